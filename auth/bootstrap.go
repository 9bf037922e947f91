package auth

import (
	"context"
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
	if email == "" {
		out.Email = "admin@localhost"
		password = GeneratePassword()
		out.PasswordFile = filepath.Join(dataDir, "admin-password.txt")
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return FirstAdmin{}, err
		}
		content := fmt.Sprintf("email: %s\npassword: %s\n", out.Email, password)
		if err := os.WriteFile(out.PasswordFile, []byte(content), 0o600); err != nil {
			return FirstAdmin{}, fmt.Errorf("write admin password file: %w", err)
		}
	}
	u, err := s.CreateUser(ctx, NewUser{Email: out.Email, Name: "Administrator", Password: password, CorpID: corpIDs[0], Role: RoleAdmin})
	if err == ErrConflict {
		// Another instance created it first.
		return FirstAdmin{}, nil
	}
	if err != nil {
		return FirstAdmin{}, err
	}
	for _, c := range corpIDs[1:] {
		if err := s.AddMembership(ctx, Membership{UserID: u.ID, CorpID: c, Role: RoleAdmin}); err != nil {
			return FirstAdmin{}, err
		}
	}
	return out, nil
}
