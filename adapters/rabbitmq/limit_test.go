package rabbitmq

import "testing"

// TestCountsOnlyFailures: the client declares x-delivery-limit only on
// servers that count failures alone toward it (4.3 and later); an unknown
// or unparsable version is taken for an old one.
func TestCountsOnlyFailures(t *testing.T) {
	for version, want := range map[string]bool{
		"3.10.8": false, "3.13.7": false, "4.0.5": false, "4.2.1": false,
		"4.3.0": true, "4.3": true, "4.3.0-rc.1": true, "4.10.2": true, "5.0.0": true,
		"": false, "4": false, "x.y": false, "4.x": false,
	} {
		if got := countsOnlyFailures(version); got != want {
			t.Errorf("countsOnlyFailures(%q) = %v, want %v", version, got, want)
		}
	}
}
