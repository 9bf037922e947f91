package fake

import "testing"

// StartForTest serves a fake with one corp (the sandbox corp's app under id,
// with the demo world when demo is set) until the test ends, and returns it
// with its base URL.
func StartForTest(t testing.TB, id string, demo bool) (*Fake, string) {
	t.Helper()
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := f.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	spec := SandboxCorp
	spec.ID = id
	f.AddCorp(spec, demo)
	return f, base
}
