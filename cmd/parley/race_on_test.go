//go:build race

package main

// raceEnabled: the tests run with -race, so the parley binary is built with it too.
const raceEnabled = true
