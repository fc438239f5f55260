package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFirstAdminSecret: a node with no join token carries, on its own
// requests to other members, the first admin-scoped token it accepts
// itself — every member accepts the same ones.
func TestFirstAdminSecret(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	body := "# ops tokens\n\njobs register,labels jobsecret-0123456789\nops read,admin opssecret-0123456789\nroot admin rootsecret-0123456789\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := firstAdminSecret(file, nil); got != "opssecret-0123456789" {
		t.Fatalf("from the file: %q", got)
	}
	if got := firstAdminSecret("", []string{"a read s-0123456789abcdef", "b admin flagsecret-0123456789"}); got != "flagsecret-0123456789" {
		t.Fatalf("from --token: %q", got)
	}
	if got := firstAdminSecret("", []string{"a read,labels s-0123456789abcdef"}); got != "" {
		t.Fatalf("no admin token: %q", got)
	}
}
