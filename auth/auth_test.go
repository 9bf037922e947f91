package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

func TestLoginTokensAndCorpScoping(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := auth.New(db)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, auth.NewUser{Email: "Ann@Example.com", Password: "correct horse", CorpID: "wwA", Role: auth.RoleSDR})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, auth.NewUser{Email: "ann@example.com", Password: "another one", CorpID: "wwA", Role: auth.RoleCS}); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("duplicate email: %v", err)
		}
		if _, err := s.CreateUser(ctx, auth.NewUser{Email: "b@x", Password: "short", CorpID: "wwA", Role: auth.RoleSDR}); func() bool {
			ae, ok := apperr.As(err)
			return !ok || ae.Fields["password"] == ""
		}() {
			t.Fatalf("short password: %v", err)
		}
		if _, _, err := s.Login(ctx, "ann@example.com", "wrong"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		tok, _, err := s.Login(ctx, "ANN@example.com", "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Authenticate(ctx, tok, "")
		if err != nil || p.CorpID != "wwA" || p.Role != auth.RoleSDR || !p.Can(auth.PermPII) || p.Can(auth.PermUsersManage) {
			t.Fatalf("principal %+v %v", p, err)
		}
		if _, err := s.Authenticate(ctx, tok, "wwB"); !errors.Is(err, auth.ErrNotMember) {
			t.Fatalf("other corp: %v", err)
		}
		s.AddMembership(ctx, auth.Membership{UserID: u.ID, CorpID: "wwB", Role: auth.RoleMarketer})
		p, err = s.Authenticate(ctx, tok, "wwB")
		if err != nil || p.Role != auth.RoleMarketer || p.Can(auth.PermPII) {
			t.Fatalf("in wwB: %+v %v", p, err)
		}
		// Per-corp permission override: marketers in wwB may see mobiles.
		if err := s.SetPermission(ctx, "wwB", auth.RoleMarketer, auth.PermPII, true); err != nil {
			t.Fatal(err)
		}
		p, _ = s.Authenticate(ctx, tok, "wwB")
		if !p.Can(auth.PermPII) {
			t.Fatal("override not applied")
		}
		p, _ = s.Authenticate(ctx, tok, "wwA")
		if p.Role != auth.RoleSDR {
			t.Fatal("override leaked to another corp")
		}
		if err := s.Revoke(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, tok, ""); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("revoked token: %v", err)
		}
		api, _, err := s.CreateAPIToken(ctx, u.ID, "crm sync", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, api, ""); err != nil {
			t.Fatalf("api token: %v", err)
		}
		// A password change ends sessions but not API tokens.
		tok2, _, _ := s.Login(ctx, "ann@example.com", "correct horse")
		s.SetPassword(ctx, "ann@example.com", "new password!")
		if _, err := s.Authenticate(ctx, tok2, ""); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatal("session survived a password change")
		}
		if _, err := s.Authenticate(ctx, api, ""); err != nil {
			t.Fatal("api token revoked by a password change")
		}
		team, err := s.CreateTeam(ctx, "wwA", "East", u.ID)
		if err != nil {
			t.Fatal(err)
		}
		s.AddTeamMember(ctx, "wwA", team.ID, u.ID)
		s.AddTeamMember(ctx, "wwA", team.ID, u.ID)
		if err := s.AddTeamMember(ctx, "wwB", team.ID, u.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a team of another corp: %v", err)
		}
		if ids, _ := s.TeamMembers(ctx, team.ID); len(ids) != 1 {
			t.Fatalf("members %v", ids)
		}
	})
}

func TestEnsureFirstAdmin_GeneratesPasswordFile(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := auth.New(db)
		dir := t.TempDir()
		fa, err := s.EnsureFirstAdmin(context.Background(), "", "", dir, []string{"wwA", "wwB"})
		if err != nil || !fa.Created || fa.Email != "admin@localhost" {
			t.Fatalf("%+v %v", fa, err)
		}
		st, err := os.Stat(filepath.Join(dir, "admin-password.txt"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("password file: %v %v", st, err)
		}
		again, _ := s.EnsureFirstAdmin(context.Background(), "", "", dir, []string{"wwA"})
		if again.Created {
			t.Fatal("second start created another admin")
		}
		users, _ := s.ListUsers(context.Background(), "wwB")
		if len(users) != 1 || users[0].Role != auth.RoleAdmin {
			t.Fatalf("admin not in second corp: %+v", users)
		}
	})
}

// Two instances started at once on an empty database: one makes the first
// admin, and only its password file is left, with a password that signs in;
// the other starts as if the admin had been there.
func TestEnsureFirstAdmin_TwoInstancesAtOnceLeaveOneWorkingPasswordFile(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		services := []*auth.Service{auth.New(db), auth.New(sqltest.Reopen(t, db))}
		dirs := []string{t.TempDir(), t.TempDir()}
		var firsts [2]auth.FirstAdmin
		var errs [2]error
		sqltest.AtOnce(len(services), func(i int) {
			firsts[i], errs[i] = services[i].EnsureFirstAdmin(ctx, "", "", dirs[i], []string{"wwA"})
		})
		made := 0
		for i := range services {
			if errs[i] != nil {
				t.Fatalf("instance %d: %v", i, errs[i])
			}
			files, _ := os.ReadDir(dirs[i])
			if !firsts[i].Created {
				if len(files) != 0 {
					t.Fatalf("instance %d made no admin but left %v", i, files)
				}
				continue
			}
			made++
			if len(files) != 1 || files[0].Name() != "admin-password.txt" {
				t.Fatalf("instance %d made the admin and left %v", i, files)
			}
			b, err := os.ReadFile(firsts[i].PasswordFile)
			if err != nil {
				t.Fatal(err)
			}
			var email, password string
			fmt.Sscanf(string(b), "email: %s\npassword: %s\n", &email, &password)
			if _, _, err := services[0].Login(ctx, email, password); err != nil {
				t.Fatalf("the password file's password: %v", err)
			}
		}
		if made != 1 {
			t.Fatalf("%d instances made the first admin", made)
		}
	})
}

// Admins keep every permission: taking one could leave nobody able to give
// it back.
func TestSetPermission_AdminsKeepEveryPermission(t *testing.T) {
	s := auth.New(sqltest.OpenSQLite(t))
	ctx := context.Background()
	if err := s.SetPermission(ctx, "wwA", auth.RoleAdmin, auth.PermUsersManage, false); err == nil {
		t.Fatal("an admin's users.manage was taken")
	}
	perms, err := s.RolePermissions(ctx, "wwA", auth.RoleAdmin)
	if err != nil || !perms[auth.PermUsersManage] {
		t.Fatalf("admin permissions: %v %v", perms, err)
	}
}

// A corp keeps an admin: the last one cannot be demoted; a user cannot
// disable themselves; a disabled user's tokens stop working; API tokens are
// listed and revoked by their owner only.
func TestRolesTokensAndDisabling(t *testing.T) {
	s := auth.New(sqltest.OpenSQLite(t))
	ctx := context.Background()
	admin, err := s.CreateUser(ctx, auth.NewUser{Email: "a@example.com", Password: "password a", CorpID: "wwA", Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	sdr, err := s.CreateUser(ctx, auth.NewUser{Email: "s@example.com", Password: "password s", CorpID: "wwA", Role: auth.RoleSDR})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRole(ctx, "wwA", admin.ID, auth.RoleSDR, ""); err != auth.ErrLastAdmin {
		t.Fatalf("demoting the last admin: %v", err)
	}
	if err := s.SetRole(ctx, "wwA", sdr.ID, auth.RoleAdmin, "lisi"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRole(ctx, "wwA", admin.ID, auth.RoleSales, ""); err != nil {
		t.Fatalf("demoting an admin when another is left: %v", err)
	}
	if err := s.SetDisabled(ctx, "wwA", sdr.ID, sdr.ID, true); err == nil {
		t.Fatal("a user disabled themselves")
	}
	tok, id, err := s.CreateAPIToken(ctx, admin.ID, "crm", 0)
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := s.APITokens(ctx, admin.ID); len(list) != 1 || list[0].ID != id || list[0].Name != "crm" {
		t.Fatalf("tokens: %+v", list)
	}
	if err := s.RevokeAPIToken(ctx, sdr.ID, id); err == nil {
		t.Fatal("another user revoked the token")
	}
	if err := s.SetDisabled(ctx, "wwA", sdr.ID, admin.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, tok, "wwA"); err != auth.ErrUnauthenticated {
		t.Fatalf("a disabled user's token: %v", err)
	}
	if err := s.SetDisabled(ctx, "wwA", sdr.ID, admin.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIToken(ctx, admin.ID, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, tok, "wwA"); err != auth.ErrUnauthenticated {
		t.Fatalf("a revoked token: %v", err)
	}
}

// twoAdminsOnTwoInstances makes two admins of corp wwA and returns two
// services on db, as two instances of Qiflow, with the admins' ids.
func twoAdminsOnTwoInstances(t *testing.T, db *qsql.DB) ([]*auth.Service, [2]int64) {
	t.Helper()
	services := []*auth.Service{auth.New(db), auth.New(sqltest.Reopen(t, db))}
	var admins [2]int64
	for i := range admins {
		u, err := services[0].CreateUser(context.Background(), auth.NewUser{Email: fmt.Sprint("admin", i, "@example.com"), Password: "password x", CorpID: "wwA", Role: auth.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		admins[i] = u.ID
	}
	return services, admins
}

// Two admins demoting each other at the same moment, on two instances:
// one wins and the other is refused, so the corp keeps an admin (each
// counting the admins in its own snapshot, both would see two).
func TestSetRole_TwoAdminsDemotingEachOtherAtOnceLeaveOne(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		services, admins := twoAdminsOnTwoInstances(t, db)
		for round := range 20 {
			for _, id := range admins {
				if err := services[0].SetRole(ctx, "wwA", id, auth.RoleAdmin, ""); err != nil {
					t.Fatal(err)
				}
			}
			var errs [2]error
			sqltest.AtOnce(len(admins), func(i int) { errs[i] = services[i].SetRole(ctx, "wwA", admins[i], auth.RoleSDR, "") })
			var left int
			if err := db.GetContext(ctx, &left, db.Rebind(`SELECT COUNT(*) FROM user_corps WHERE corp_id = ? AND role = ?`), "wwA", string(auth.RoleAdmin)); err != nil {
				t.Fatal(err)
			}
			refused := 0
			for _, err := range errs {
				if errors.Is(err, auth.ErrLastAdmin) {
					refused++
				} else if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if left != 1 || refused != 1 {
				t.Fatalf("round %d: %d admins left, %d demotions refused (%v)", round, left, refused, errs)
			}
		}
	})
}

// The same email signed up at once on two instances: one user is made and
// the others are told the email is taken, never a server error.
func TestCreateUser_TheSameEmailAtOnceMakesOneUser(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		services := []*auth.Service{auth.New(db), auth.New(sqltest.Reopen(t, db))}
		const callers = 6
		errs := make([]error, callers)
		sqltest.AtOnce(callers, func(i int) {
			_, errs[i] = services[i%2].CreateUser(ctx, auth.NewUser{Email: "same@example.com", Password: "password x", CorpID: "wwA", Role: auth.RoleSDR})
		})
		made := 0
		for _, err := range errs {
			switch {
			case err == nil:
				made++
			case !errors.Is(err, auth.ErrConflict):
				t.Fatalf("a caller got %v, want the user or ErrConflict", err)
			}
		}
		if made != 1 {
			t.Fatalf("%d users made: %v", made, errs)
		}
	})
}

// The corp's last active admin cannot be disabled, by anyone allowed to
// manage users (a role given that permission, too), nor can two admins
// both be disabled at once when they are the last two.
func TestSetDisabled_KeepsAnActiveAdmin(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		services, admins := twoAdminsOnTwoInstances(t, db)
		actor, err := services[0].CreateUser(ctx, auth.NewUser{Email: "m@example.com", Password: "password m", CorpID: "wwA", Role: auth.RoleMarketer})
		if err != nil {
			t.Fatal(err)
		}
		if err := services[0].SetDisabled(ctx, "wwA", actor.ID, admins[0], true); err != nil {
			t.Fatalf("disabling one of two admins: %v", err)
		}
		if err := services[0].SetDisabled(ctx, "wwA", actor.ID, admins[1], true); !errors.Is(err, auth.ErrLastAdmin) {
			t.Fatalf("disabling the last active admin: %v", err)
		}
		// The disabled admin demoted: nobody active is left out (the other stays).
		if err := services[0].SetRole(ctx, "wwA", admins[0], auth.RoleSDR, ""); err != nil {
			t.Fatalf("demoting a disabled admin while another is active: %v", err)
		}
		if err := services[0].SetRole(ctx, "wwA", admins[0], auth.RoleAdmin, ""); err != nil {
			t.Fatal(err)
		}
		for round := range 10 {
			for _, id := range admins {
				if err := services[0].SetDisabled(ctx, "wwA", actor.ID, id, false); err != nil {
					t.Fatal(err)
				}
			}
			var errs [2]error
			sqltest.AtOnce(len(admins), func(i int) { errs[i] = services[i].SetDisabled(ctx, "wwA", actor.ID, admins[i], true) })
			var active int
			if err := db.GetContext(ctx, &active, db.Rebind(`SELECT COUNT(*) FROM user_corps m JOIN users u ON u.id = m.user_id
				WHERE m.corp_id = ? AND m.role = ? AND u.disabled = 0`), "wwA", string(auth.RoleAdmin)); err != nil {
				t.Fatal(err)
			}
			if active != 1 || errors.Is(errs[0], auth.ErrLastAdmin) == errors.Is(errs[1], auth.ErrLastAdmin) {
				t.Fatalf("round %d: %d active admins left (%v)", round, active, errs)
			}
		}
	})
}
