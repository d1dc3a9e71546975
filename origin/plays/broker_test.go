package plays

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestBrokerLoopbackOnly checks that the embedded broker, which has no
// authentication, listens on 127.0.0.1 only: its address is loopback and
// the same port on this host's other addresses refuses connections.
// Mutation tried and caught: ListenFn binding ":0" (all interfaces).
func TestBrokerLoopbackOnly(t *testing.T) {
	b, err := StartBroker(context.Background(), t.TempDir(), 1, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("broker address %q: want 127.0.0.1:port", b.Addr())
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		tried++
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), port), 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("broker port %s accepts connections on %s", port, ipn.IP)
		}
	}
	t.Logf("checked %d non-loopback addresses", tried)
}
