package scim

import (
	"fmt"
	"strings"
	"testing"
)

// The case-insensitive index answers as the linear helpers do, on objects
// small and large, after sets and deletes in any spelling.
func TestCIIndexMatchesLinearHelpers(t *testing.T) {
	for _, size := range []int{3, ciLinear, ciLinear + 1, 500} {
		var x ciIndex
		indexed, linear := map[string]any{}, map[string]any{}
		for i := range size {
			k := fmt.Sprintf("Attr%d", i)
			indexed[k], linear[k] = i, i
		}
		steps := []struct{ op, key string }{
			{"set", "attr1"}, {"get", "ATTR1"}, {"del", "aTtR2"}, {"get", "attr2"}, {"set", "New"},
			{"get", "nEW"}, {"set", "straße"}, {"get", "STRASSE"}, {"get", "STRAßE"}, {"set", "Kelvin"},
			{"get", "\u212aelvin"}, {"del", "kelvin"}, {"get", "Kelvin"}, {"get", "missing"},
		}
		for i, st := range steps {
			switch st.op {
			case "set":
				x.set(indexed, st.key, i)
				setCI(linear, st.key, i)
			case "del":
				x.del(indexed, st.key)
				deleteCI(linear, st.key)
			case "get":
				if got, want := x.get(indexed, st.key), LookupCI(linear, st.key); got != want {
					t.Fatalf("size %d, step %d: get %q = %v, want %v", size, i, st.key, got, want)
				}
			}
			if len(indexed) != len(linear) {
				t.Fatalf("size %d, step %d: %d keys, want %d", size, i, len(indexed), len(linear))
			}
		}
	}
}

// BenchmarkPatchOperation measures one PATCH operation (a replace of an
// attribute the document lacks, the case that scanned the whole document
// before) on users with few and with MaxAttributes attributes: the time per
// operation does not grow with the document (docs/PERFORMANCE.md).
func BenchmarkPatchOperation(b *testing.B) {
	for _, attrs := range []int{10, MaxAttributes - 100} {
		b.Run(fmt.Sprintf("attributes=%d", attrs), func(b *testing.B) {
			doc := map[string]any{"userName": "alice", "schemas": []any{UserSchema}}
			for i := range attrs {
				doc[fmt.Sprintf("custom%d", i)] = "v"
			}
			const ops = 1000
			req := &PatchRequest{}
			for i := range ops {
				req.Operations = append(req.Operations, PatchOperation{Op: "replace", Path: "Extra" + strings.Repeat("x", i%7) + fmt.Sprint(i), Value: "v"})
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := ApplyPatch(Users, doc, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ops), "ns/operation")
		})
	}
}
