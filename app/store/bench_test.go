package store_test

import (
	"context"
	"testing"

	"idbridge/app/store/storetest"
)

func BenchmarkFindSiteByClientKey(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			st := be.Open(b)
			const n = 1000
			installMany(b, st, n)
			key := newSite(n / 2).ClientKey
			tx := st.View(context.Background())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tx.FindSiteByClientKey(key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
