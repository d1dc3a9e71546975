package loadtest

import (
	"fmt"
	"os"
	"time"
)

// progressLoop writes a status line every ProgressEvery until stop closes:
// rates over the last interval, p99 TTFB over the last whole second, and
// the cumulative edge hit ratio. On a terminal the line rewrites itself.
func (r *runner) progressLoop(stop <-chan struct{}) {
	if r.cfg.Progress == nil {
		<-stop
		return
	}
	every := r.cfg.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	end := "\n"
	if f, ok := r.cfg.Progress.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			end = "\r\x1b[K"
		}
	}
	tk := time.NewTicker(every)
	defer tk.Stop()
	prev := progress{}
	for {
		select {
		case <-stop:
			if end != "\n" {
				fmt.Fprint(r.cfg.Progress, "\n")
			}
			return
		case now := <-tk.C:
			p := r.rec.progress(now)
			dt := (p.elapsed - prev.elapsed).Seconds()
			hit := "n/a"
			if p.hitRatio >= 0 {
				hit = fmt.Sprintf("%.1f%%", 100*p.hitRatio)
			}
			line := fmt.Sprintf("elapsed %4.0fs  %7.1f req/s  %7.2f MB/s  p99 %8.2f ms  errors %d  verify %d  edge hit %s",
				p.elapsed.Seconds(), float64(p.requests-prev.requests)/dt, float64(p.bytes-prev.bytes)/1e6/dt,
				float64(p.p99)/float64(time.Millisecond), p.errors, p.verifyFailures, hit)
			if end == "\n" {
				fmt.Fprint(r.cfg.Progress, line, end)
			} else {
				fmt.Fprint(r.cfg.Progress, end, line)
			}
			prev = p
		}
	}
}
