// Command shield runs an origin shield: the regional caching tier between
// the edges and the origin, with request collapsing and stale-if-error.
// See configs/shield.yaml.
package main

import (
	"os"

	"github.com/musiccdn/cdn/cmd/internal/tiermain"
	"github.com/musiccdn/cdn/tier"
)

func main() { os.Exit(tiermain.Main(tier.Shield, os.Args[1:], os.Stderr)) }
