//go:build tools

// Package seaweedfs pins SeaweedFS's `weed` command for `go build github.com/seaweedfs/seaweedfs/weed`
// (deploy/local/install.py): a wrapper module, because `go install weed@version` is refused for
// a module whose go.mod has a replace directive.
package seaweedfs

import _ "github.com/seaweedfs/seaweedfs/weed"
