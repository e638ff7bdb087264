package store

// Test hooks for the service-account, profile and audit tests.

// SealedColumnNames lists "table.column" of every sealed column.
func SealedColumnNames() []string {
	out := make([]string, len(sealedColumns))
	for i, c := range sealedColumns {
		out[i] = c.Table + "." + c.Column
	}
	return out
}
