package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Scope is what a bearer token may do. Every admin route declares the one
// scope it needs; admin implies every other.
type Scope uint8

// The scopes, as DESIGN.md names them.
const (
	ScopeNone     Scope = iota // open route (health, metrics)
	ScopeScore                 // POST …/infer, when scoring requires a token
	ScopeRegister              // register model versions (retraining jobs)
	ScopeLabels                // send labels
	ScopeRead                  // read models, audit, predictions, exports
	ScopeAdmin                 // stage changes, promote, rollback, approve, delete, policy
)

var scopeNames = [...]string{ScopeNone: "none", ScopeScore: "score", ScopeRegister: "register", ScopeLabels: "labels", ScopeRead: "read", ScopeAdmin: "admin"}

// String returns the scope's name.
func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return "invalid"
}

// ParseScope maps a name to a Scope.
func ParseScope(name string) (Scope, error) {
	for s := ScopeScore; s <= ScopeAdmin; s++ {
		if scopeNames[s] == name {
			return s, nil
		}
	}
	return ScopeNone, fmt.Errorf("gateway: unknown scope %q (want score, register, labels, read or admin)", name)
}

// Token is one configured bearer token. Only its hash is kept.
type Token struct {
	Name   string
	Scopes []Scope
	hash   [32]byte
}

// NewToken makes a token from its secret.
func NewToken(name, secret string, scopes ...Scope) Token {
	return Token{Name: name, Scopes: scopes, hash: sha256.Sum256([]byte(secret))}
}

func (t *Token) has(s Scope) bool {
	for _, x := range t.Scopes {
		if x == s || x == ScopeAdmin {
			return true
		}
	}
	return false
}

// Auth checks bearer tokens. It is immutable once built.
type Auth struct {
	tokens []Token
}

// NewAuth returns an Auth over tokens.
func NewAuth(tokens ...Token) *Auth { return &Auth{tokens: tokens} }

// Authorize checks an Authorization header against a scope. It returns the
// token's name, or a status (401 or 403) and a message. The presented
// secret is hashed and compared with every token in constant time, so
// neither the comparison nor the loop reveals which token was close.
func (a *Auth) Authorize(header []byte, need Scope) (name string, code int, msg string) {
	if need == ScopeNone {
		return "", 0, ""
	}
	secret, ok := bytes.CutPrefix(header, []byte("Bearer "))
	if !ok || len(secret) == 0 {
		return "", 401, "missing bearer token: send Authorization: Bearer <token> (scope " + need.String() + " needed)"
	}
	h := sha256.Sum256(bytes.TrimSpace(secret))
	var found *Token
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:]) == 1 {
			found = &a.tokens[i]
		}
	}
	if found == nil {
		return "", 401, "invalid bearer token"
	}
	if !found.has(need) {
		return found.Name, 403, "token " + found.Name + " lacks the " + need.String() + " scope this route needs"
	}
	return found.Name, 0, ""
}

// LoadTokens reads a token file: one token a line, `NAME SCOPE[,SCOPE…]
// SECRET`, with blank lines and # comments ignored. The file must not be
// readable by others, since it holds the secrets.
func LoadTokens(path string) ([]Token, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: cannot read token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("gateway: token file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Token
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t, err := ParseTokenSpec(line)
		if err != nil {
			return nil, fmt.Errorf("gateway: %s line %d: %w", path, n, err)
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// ParseTokenSpec parses `NAME SCOPE[,SCOPE…] SECRET` (also the --token flag).
func ParseTokenSpec(spec string) (Token, error) {
	f := strings.Fields(spec)
	if len(f) != 3 {
		return Token{}, errors.New("want NAME SCOPE[,SCOPE…] SECRET")
	}
	var scopes []Scope
	for _, name := range strings.Split(f[1], ",") {
		s, err := ParseScope(name)
		if err != nil {
			return Token{}, err
		}
		scopes = append(scopes, s)
	}
	if len(f[2]) < 16 {
		return Token{}, fmt.Errorf("token %s: the secret must be at least 16 characters", f[0])
	}
	return NewToken(f[0], f[2], scopes...), nil
}

// AdminTokenFile is where a data dir keeps its generated admin token.
const AdminTokenFile = "admin.token"

// EnsureAdminToken returns the admin token of a data dir, generating it
// (32 random bytes, hex, mode 0600) on first use. A node started with no
// tokens configured uses it, so a fresh node is never open for writes.
func EnsureAdminToken(dataDir string) (Token, string, error) {
	path := filepath.Join(dataDir, AdminTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		var r [32]byte
		if _, err := rand.Read(r[:]); err != nil {
			return Token{}, "", err
		}
		b = []byte(hex.EncodeToString(r[:]) + "\n")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return Token{}, "", fmt.Errorf("gateway: cannot write %s: %w", path, err)
		}
	default:
		return Token{}, "", fmt.Errorf("gateway: cannot read %s: %w", path, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return Token{}, "", fmt.Errorf("gateway: %s is empty: delete it to generate a new admin token", path)
	}
	return NewToken("local-admin", secret, ScopeAdmin), path, nil
}
