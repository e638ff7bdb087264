package models

// privacyInventory classifies the privacy features' own state (SPEC 8):
// processing restrictions and the Personal Data Reporting cycle.
func privacyInventory() []InventoryEntry {
	other := func(table, column, why string) InventoryEntry {
		return InventoryEntry{Table: table, Column: column, Purpose: why}
	}
	const (
		restrictPurpose = "honouring a restriction of processing (GDPR Art. 18): the person's data is kept but not processed"
		restrictBasis   = "legal obligation (GDPR Art. 6(1)(c)): Art. 18 GDPR"
		restrictKeep    = "until the restriction is lifted or the person's data is erased; with the site's data after an uninstall"
		reportPurpose   = "reporting to Atlassian which accounts idbridge holds personal data for, so that closed accounts are erased (Atlassian's Personal Data Reporting API)"
		reportBasis     = "legal obligation (GDPR Art. 6(1)(c)) and Atlassian's app terms: erasing the data of closed accounts"
		reportKeep      = "while idbridge holds other personal data of the account; removed when that data is erased or purged"
		reportTo        = "Atlassian (the account ID and when its data last changed, at most once per reporting period)"
	)
	return []InventoryEntry{
		other(TableRestrictions, "site_id", "which site the restriction belongs to"),
		{Table: TableRestrictions, Column: "account_id", Personal: true, Category: "account identifier: the Atlassian account ID of the person whose data may not be processed",
			Purpose: restrictPurpose, LegalBasis: restrictBasis, Source: "a site administrator", Retention: restrictKeep, Recipients: RecipientsNone},
		{Table: TableRestrictions, Column: "reason", Personal: true, Category: "free text about the person: why processing is restricted (for example a contested accuracy)",
			Purpose: restrictPurpose, LegalBasis: restrictBasis, Source: "a site administrator", Retention: restrictKeep, Recipients: RecipientsNone},
		other(TableRestrictions, "restricted_at", "since when processing is restricted"),
		{Table: TableRestrictions, Column: "restricted_by", Personal: true, Category: "account identifier: the Atlassian account ID of the administrator who restricted processing",
			Purpose: "accountability for the restriction", LegalBasis: BasisLegitimate, Source: "the administrator's signed request", Retention: restrictKeep, Recipients: RecipientsNone},
		other(TableRestrictions, "blocked_count", "counting what was not done while processing is restricted (never silently dropped)"),
		other(TableRestrictions, "last_blocked_at", "when something was last held back"),
		other(TableRestrictions, "last_blocked", "what was last held back (sync, sign-in, audit detail, reporting refresh)"),

		other(TableReportAccount, "site_id", "which site holds data of the account"),
		{Table: TableReportAccount, Column: "account_id", Personal: true, Category: "account identifier: an Atlassian account ID idbridge holds personal data for",
			Purpose: reportPurpose, LegalBasis: reportBasis, Source: "idbridge's other tables (directory, audit log, portal sessions, configuration)", Retention: reportKeep, Recipients: reportTo},
		other(TableReportAccount, "updated_at", "when idbridge's data of the account was first collected or last refreshed (reported as updatedAt)"),
		other(TableReportAccount, "seen_at", "which reporting cycle last found the account in idbridge's data"),
		other(TableReportAccount, "reported_at", "reporting an account at most once per reporting period"),

		other(TableReportSites, "site_id", "which site the reporting cycle is for"),
		other(TableReportSites, "cycle_period_seconds", "the reporting period Atlassian asks for (Cycle-Period)"),
		other(TableReportSites, "cycle_started_at", "the cycle in progress, resumed after a crash"),
		other(TableReportSites, "cycle_finished_at", "when the last cycle finished"),
		other(TableReportSites, "next_cycle_at", "when the next cycle is due"),
		other(TableReportSites, "retry_at", "waiting as long as Atlassian asks (Retry-After)"),
		other(TableReportSites, "reported", "how many accounts the cycle reported"),
		other(TableReportSites, "closed", "how many accounts Atlassian said were closed"),
		other(TableReportSites, "erased", "how many closed accounts' data was erased"),
		other(TableReportSites, "updated", "how many accounts Atlassian said were updated"),
		other(TableReportSites, "ignored", "how many answers were not applied (malformed, or about accounts not sent)"),
		other(TableReportSites, "last_status", "how the last cycle went"),
		other(TableReportSites, "last_message", "how the last cycle went, in words"),
		other(TableReportSites, "updated_at", "when the cycle state last changed"),
	}
}
