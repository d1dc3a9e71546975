// Command edge runs a CDN edge node: it serves players' signed byte-range
// requests for audio and seek tables from its chunk cache, filling misses
// from the shields. See configs/edge.yaml.
package main

import (
	"os"

	"github.com/musiccdn/cdn/cmd/internal/tiermain"
	"github.com/musiccdn/cdn/tier"
)

func main() { os.Exit(tiermain.Main(tier.Edge, os.Args[1:], os.Stderr)) }
