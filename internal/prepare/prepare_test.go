package prepare

import (
	"testing"

	"github.com/google/uuid"
)

func TestNewIDIsUniqueRandomUUID(t *testing.T) {
	seen := make(map[string]bool)
	for range 10000 { // several refills of the random buffer
		id := NewID()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("NewID() = %q: not a version 4 UUID (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = NewID()
		}
	})
}
