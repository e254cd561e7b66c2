//go:build tools

// Package tools pins the command built by hack/build-controlplane.sh.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
