// SPDX-License-Identifier: GPL-3.0-or-later

// Command pause is the pod sandbox process: the Go equivalent of Kubernetes'
// build/pause/linux/pause.c. It sleeps until SIGINT or SIGTERM (then exits 0),
// reaps the zombies it inherits as PID 1, and prints its version with -v.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at link time: -ldflags "-X main.version=3.10.2".
var version = "unknown"

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "-v" {
			fmt.Printf("pause.go version: %s\n", version)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "usage: %s [-v]\n", os.Args[0])
		os.Exit(1)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
