package runparams

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/musiccdn/cdn/loadtest/workload"
)

// TestRoundTrip: a workload recorded in a report and read back through
// JSON is the same workload, so a planner replaying a run replays that
// run's request stream. Catches a field left out of Of or of Config.
func TestRoundTrip(t *testing.T) {
	w := workload.DefaultConfig()
	w.Tracks, w.Seed, w.Users = 1234, 7, 99
	r := Of(w, 10, time.Minute, &POP{Edges: 3, EdgeCacheBytes: 1 << 30, ChunkSize: 256 << 10})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, err := back.Workload.Config()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("workload after the report:\n%+v\nwant\n%+v", got, w)
	}
	if back.Compression != 10 || back.PlannedDurationS != 60 || back.POP.Validate() != nil {
		t.Errorf("run after the report: %+v", back)
	}
}
