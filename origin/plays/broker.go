package plays

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is the embedded one-node Kafka-protocol broker (franz-go's kfake)
// with its log, groups and transaction state persisted in a data directory.
// Closing it saves its state; starting it again on the same directory
// brings back the topics, the committed records and offsets, and the
// producer ids, on the same port when that port is still free, so clients
// that knew the old address reconnect by themselves.
type Broker struct {
	c       *kfake.Cluster
	addr    string
	logger  *slog.Logger
	closeMu sync.Mutex
	closed  bool
}

// StartBroker starts the embedded broker with its state under dataDir,
// creating the plays and royalties topics with the given partitions the
// first time.
func StartBroker(ctx context.Context, dataDir string, partitions int, logger *slog.Logger) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dataDir == "" {
		return nil, errors.New("plays: broker: empty data dir")
	}
	if partitions < 1 {
		return nil, fmt.Errorf("plays: broker: partitions %d < 1", partitions)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("plays: broker: %w", err)
	}
	portFile := filepath.Join(dataDir, "port")
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(filepath.Join(dataDir, "log")),
		kfake.DefaultNumPartitions(partitions),
		kfake.SeedTopics(int32(partitions), PlaysTopic, RoyaltiesTopic, RejectedTopic),
		kfake.WithLogger(kfakeLogger{logger}),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			// Prefer the port of the previous run; fall back to a new
			// ephemeral one if something else took it.
			if b, err := os.ReadFile(portFile); err == nil {
				if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
					if ln, err := net.Listen(network, net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
						return ln, nil
					}
				}
			}
			return net.Listen(network, "127.0.0.1:0")
		}),
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("plays: broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return nil, fmt.Errorf("plays: broker: %d listen addresses, want 1", len(addrs))
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	if err := os.WriteFile(portFile, []byte(port+"\n"), 0o644); err != nil {
		c.Close()
		return nil, fmt.Errorf("plays: broker: %w", err)
	}
	logger.Info("embedded kafka broker started", "addr", addrs[0], "data_dir", dataDir)
	return &Broker{c: c, addr: addrs[0], logger: logger}, nil
}

// Addr is the broker's host:port on 127.0.0.1.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker and saves its state to the data directory. It is
// safe to call twice.
func (b *Broker) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.c.Close()
	return nil
}

// kfakeLogger sends kfake's errors to slog at error level and its
// warnings at debug level: they are routine ("EndTxn slow ... 9ms") on a
// loaded machine. Its info and debug chatter is per request and dropped.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error("kfake: " + fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		k.l.Debug("kfake: " + fmt.Sprintf(format, args...))
	}
}
