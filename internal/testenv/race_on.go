//go:build race

package testenv

// raceEnabled: the tests run with -race, so node processes are built with it too.
const raceEnabled = true
