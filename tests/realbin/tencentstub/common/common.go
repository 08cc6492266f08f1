// Package common: the helpers flannel's tencentvpc backend calls (stand-in, see README.md).
package common

// StringPtr returns a pointer to s.
func StringPtr(s string) *string { return &s }

// StringPtrs returns pointers to each of ss.
func StringPtrs(ss []string) []*string {
	out := make([]*string, 0, len(ss))
	for i := range ss {
		out = append(out, &ss[i])
	}
	return out
}

// BoolPtr returns a pointer to b.
func BoolPtr(b bool) *bool { return &b }
