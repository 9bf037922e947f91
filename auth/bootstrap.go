package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FirstAdmin is the outcome of EnsureFirstAdmin.
type FirstAdmin struct {
	Created      bool
	Email        string
	PasswordFile string // set when the password was generated
}

// EnsureFirstAdmin creates the first admin when no user exists: with the
// configured email and password, or admin@localhost with a generated
// password written to a 0600 file in dataDir (whose path, never the password,
// the caller logs). The admin belongs to every corp given.
func (s *Service) EnsureFirstAdmin(ctx context.Context, email, password, dataDir string, corpIDs []string) (FirstAdmin, error) {
	n, err := s.UserCount(ctx)
	if err != nil || n > 0 || len(corpIDs) == 0 {
		return FirstAdmin{}, err
	}
	out := FirstAdmin{Created: true, Email: email}
	var pending string // the generated password's file, until the admin is made
	if email == "" {
		out.Email = "admin@localhost"
		password = GeneratePassword()
		out.PasswordFile = filepath.Join(dataDir, "admin-password.txt")
		if pending, err = writePending(dataDir, fmt.Sprintf("email: %s\npassword: %s\n", out.Email, password)); err != nil {
			return FirstAdmin{}, err
		}
	}
	u, err := s.CreateUser(ctx, NewUser{Email: out.Email, Name: "Administrator", Password: password, CorpID: corpIDs[0], Role: RoleAdmin})
	if err != nil && pending != "" {
		// No admin with this password: its file would mislead.
		os.Remove(pending)
	}
	if errors.Is(err, ErrConflict) {
		// Another instance created it first: its password file is the one.
		return FirstAdmin{}, nil
	}
	if err != nil {
		return FirstAdmin{}, err
	}
	if pending != "" {
		// Written before the admin was made, so a crash in between leaves
		// the password findable; named once the admin exists.
		if err := os.Rename(pending, out.PasswordFile); err != nil {
			return FirstAdmin{}, fmt.Errorf("the first admin was made and its password is in %s: %w", pending, err)
		}
	}
	for _, c := range corpIDs[1:] {
		if err := s.AddMembership(ctx, Membership{UserID: u.ID, CorpID: c, Role: RoleAdmin}); err != nil {
			return FirstAdmin{}, err
		}
	}
	return out, nil
}

// writePending writes content to a new file in dir readable only by its
// owner, and returns its path.
func writePending(dir, content string) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "admin-password-*.pending") // 0600
	if err != nil {
		return "", fmt.Errorf("write admin password file: %w", err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write admin password file: %w", err)
	}
	return f.Name(), nil
}
