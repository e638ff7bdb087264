package models

import "testing"

func TestSiteEffectiveState(t *testing.T) {
	for _, c := range []struct {
		state        SiteState
		installation string
		want         SiteState
	}{
		{SiteInstalled, "", SiteInstalled},
		{SiteDisabled, "", SiteDisabled},
		{SiteUninstalled, "", SiteUninstalled},
		{SiteInstalled, "ari:cloud:ecosystem::installation/1", SiteInstalled},
		{SiteDisabled, "ari:cloud:ecosystem::installation/1", SiteInstalled}, // left over from before Forge
		{SiteUninstalled, "ari:cloud:ecosystem::installation/1", SiteUninstalled},
	} {
		s := &Site{State: c.state, SiteFacts: SiteFacts{InstallationID: c.installation}}
		if got := s.EffectiveState(); got != c.want || s.Disabled() != (c.want == SiteDisabled) {
			t.Errorf("%s with installation %q: effective %s, Disabled() %v; want %s", c.state, c.installation, got, s.Disabled(), c.want)
		}
	}
}
