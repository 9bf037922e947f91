// Package auth holds Qiflow's users, the corps they belong to with a role in
// each, teams, per-corp role permissions, and the tokens they authenticate
// with (login sessions and API tokens). It knows nothing about HTTP.
// It owns the users, user_corps, teams, team_members, auth_tokens and
// role_permissions tables.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
)

// Role is what a user does in a corp.
type Role string

const (
	RoleAdmin    Role = "admin"
	RoleMarketer Role = "marketer"
	RoleCS       Role = "cs" // customer service: put codes in front of customers
	RoleSDR      Role = "sdr"
	RoleSales    Role = "sales"
	RoleCSM      Role = "csm" // customer success
)

// Roles lists every role.
var Roles = []Role{RoleAdmin, RoleMarketer, RoleCS, RoleSDR, RoleSales, RoleCSM}

func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// Permission is a right checked per route.
type Permission string

const (
	PermEventsRead      Permission = "events.read"
	PermEventsReplay    Permission = "events.replay"
	PermJobsRead        Permission = "jobs.read"
	PermJobsManage      Permission = "jobs.manage"
	PermDirectoryRead   Permission = "directory.read"
	PermDirectorySync   Permission = "directory.sync"
	PermUsersManage     Permission = "users.manage"
	PermTokensManage    Permission = "tokens.manage" // one's own API tokens
	PermPII             Permission = "pii"           // see mobile numbers unmasked
	PermCodesManage     Permission = "codes.manage"
	PermCodesRead       Permission = "codes.read"
	PermLeadsRead       Permission = "leads.read"       // the pools and leads
	PermLeadsClaim      Permission = "leads.claim"      // claim and release leads
	PermLeadsWrite      Permission = "leads.write"      // create and update people and leads (upsert API, forms, imports)
	PermHandoffsAnswer  Permission = "handoffs.answer"  // accept or reject SQLs handed to one (sales)
	PermLeadsExport     Permission = "leads.export"     // download leads as CSV (audited; masked without pii)
	PermPoolsManage     Permission = "pools.manage"     // pools and their claim rules
	PermActivitiesWrite Permission = "activities.write" // record behaviour from other systems
	PermScoringManage   Permission = "scoring.manage"   // engagement rules, half-life, MQL threshold
	PermContactsTag     Permission = "contacts.tag"     // tag the customers one follows (the chat sidebar)
	PermJourneysManage  Permission = "journeys.manage"  // segments and journeys: design, publish, enrol
)

// Permissions lists every permission.
var Permissions = []Permission{PermEventsRead, PermEventsReplay, PermJobsRead, PermJobsManage, PermDirectoryRead,
	PermDirectorySync, PermUsersManage, PermTokensManage, PermPII, PermCodesManage, PermCodesRead, PermLeadsRead, PermLeadsClaim, PermLeadsWrite, PermHandoffsAnswer, PermLeadsExport, PermPoolsManage, PermActivitiesWrite, PermScoringManage, PermContactsTag, PermJourneysManage}

// defaultGrants is what each role may do unless a corp overrides it.
var defaultGrants = map[Role][]Permission{
	RoleAdmin:    Permissions,
	RoleMarketer: {PermDirectoryRead, PermJobsRead, PermTokensManage, PermCodesManage, PermCodesRead, PermLeadsRead, PermLeadsWrite, PermLeadsExport, PermActivitiesWrite, PermScoringManage, PermContactsTag, PermJourneysManage},
	RoleCS:       {PermDirectoryRead, PermTokensManage, PermCodesRead, PermContactsTag},
	RoleSDR:      {PermDirectoryRead, PermTokensManage, PermPII, PermLeadsRead, PermLeadsClaim, PermContactsTag},
	RoleSales:    {PermDirectoryRead, PermTokensManage, PermPII, PermLeadsRead, PermHandoffsAnswer, PermContactsTag},
	RoleCSM:      {PermDirectoryRead, PermTokensManage, PermPII, PermContactsTag},
}

// Errors.
var (
	ErrUnauthenticated = errors.New("missing, invalid or expired token")
	ErrBadCredentials  = errors.New("wrong email or password")
	ErrNotMember       = errors.New("not a member of that corp")
	ErrNotFound        = apperr.NotFound("not found")
	ErrConflict        = apperr.Conflict("already_exists", "already exists")
)

// User is a person who signs in to Qiflow.
type User struct {
	ID        int64  `db:"id" json:"id"`
	Email     string `db:"email" json:"email"`
	Name      string `db:"name" json:"name"`
	Disabled  bool   `db:"disabled" json:"disabled"`
	CreatedAt int64  `db:"created_at" json:"created_at"`
}

// Membership is a user's place in a corp.
type Membership struct {
	UserID      int64  `db:"user_id" json:"user_id"`
	CorpID      string `db:"corp_id" json:"corp_id"`
	Role        Role   `db:"role" json:"role"`
	IsDefault   bool   `db:"is_default" json:"is_default"`
	StaffUserID string `db:"staff_userid" json:"staff_userid,omitempty"`
}

// Principal is who a request acts as, and in which corp.
type Principal struct {
	UserID      int64
	Email       string
	CorpID      string
	Role        Role
	StaffUserID string
	TokenID     int64
	// Lang is the console language the user chose ("" until they do).
	Lang  string
	perms map[Permission]bool
}

// Can reports whether the principal holds perm in its corp.
func (p Principal) Can(perm Permission) bool { return p.perms[perm] }

// Service is the auth service.
type Service struct {
	db         *qsql.DB
	now        func() time.Time
	SessionTTL time.Duration
	bus        *jobs.Bus // where team changes are published (nil: not)
}

func New(db *qsql.DB) *Service {
	return &Service{db: db, now: time.Now, SessionTTL: 12 * time.Hour}
}

// NormalizeEmail lower-cases and trims: emails are compared case-insensitively.
func NormalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// NewUser describes a user to create.
type NewUser struct {
	Email, Name, Password string
	CorpID                string
	Role                  Role
	StaffUserID           string
}

// CreateUser creates a user with a membership in one corp.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	email := NormalizeEmail(nu.Email)
	switch {
	case !strings.Contains(email, "@") || len(email) > 191:
		return User{}, apperr.Field("email", "must be an email address")
	case len(nu.Password) < 8:
		return User{}, apperr.Field("password", "must be at least 8 characters")
	case len(nu.Password) > 72:
		return User{}, apperr.Field("password", "must be at most 72 bytes")
	case nu.CorpID == "":
		return User{}, apperr.Field("corp_id", "is required")
	case !nu.Role.Valid():
		return User{}, apperr.Field("role", "must be one of admin, marketer, cs, sdr, sales, csm")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(nu.Password), bcrypt.DefaultCost)
	if err != nil {
		return User{}, err
	}
	now := qsql.Millis(s.now())
	var u User
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		var exists int
		if err := tx.GetContext(ctx, &exists, `SELECT COUNT(*) FROM users WHERE email = ?`, email); err != nil {
			return err
		}
		if exists > 0 {
			return ErrConflict
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO users (email, name, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			email, nu.Name, string(hash), now, now)
		if qsql.IsDuplicate(err) {
			return ErrConflict // made by another request since the check above
		}
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_corps (user_id, corp_id, role, is_default, staff_userid, created_at) VALUES (?, ?, ?, 1, ?, ?)`,
			id, nu.CorpID, string(nu.Role), nu.StaffUserID, now); err != nil {
			return err
		}
		u = User{ID: id, Email: email, Name: nu.Name, CreatedAt: now}
		return nil
	})
	return u, err
}

// AddMembership gives a user a role in another corp (or changes it).
func (s *Service) AddMembership(ctx context.Context, m Membership) error {
	if !m.Role.Valid() {
		return apperr.Field("role", "unknown role")
	}
	q := s.db.Upsert("user_corps", []string{"user_id", "corp_id", "role", "is_default", "staff_userid", "created_at"}, []string{"user_id", "corp_id"},
		[]string{"role", "staff_userid"})
	_, err := s.db.ExecContext(ctx, q, m.UserID, m.CorpID, string(m.Role), m.IsDefault, m.StaffUserID, qsql.Millis(s.now()))
	return err
}

// SetPassword replaces a user's password and revokes their sessions.
func (s *Service) SetPassword(ctx context.Context, email, password string) error {
	if len(password) < 8 || len(password) > 72 {
		return apperr.Field("password", "must be 8 to 72 characters")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	now := qsql.Millis(s.now())
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE email = ?`, string(hash), now, NormalizeEmail(email))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = ? WHERE kind = 'session' AND revoked_at IS NULL
			AND user_id = (SELECT id FROM users WHERE email = ?)`, now, NormalizeEmail(email))
		return err
	})
}

// UserCount counts users (first-start bootstrap).
func (s *Service) UserCount(ctx context.Context) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM users`)
	return n, err
}

// UserWithRole is a user and their role in one corp.
type UserWithRole struct {
	User
	Role        Role   `db:"role" json:"role"`
	StaffUserID string `db:"staff_userid" json:"staff_userid,omitempty"`
}

// ListUsers lists the users of a corp (corpID "" lists every user with their default corp's role).
func (s *Service) ListUsers(ctx context.Context, corpID string) ([]UserWithRole, error) {
	var out []UserWithRole
	q := `SELECT u.id, u.email, u.name, u.disabled, u.created_at, m.role, m.staff_userid FROM users u JOIN user_corps m ON m.user_id = u.id WHERE m.corp_id = ? ORDER BY u.id`
	args := []any{corpID}
	if corpID == "" {
		q = `SELECT u.id, u.email, u.name, u.disabled, u.created_at, m.role, m.staff_userid FROM users u JOIN user_corps m ON m.user_id = u.id AND m.is_default = 1 ORDER BY u.id`
		args = nil
	}
	err := s.db.SelectContext(ctx, &out, q, args...)
	return out, err
}

// Login checks email and password and issues a session token.
func (s *Service) Login(ctx context.Context, email, password string) (token string, expires time.Time, err error) {
	var row struct {
		ID       int64  `db:"id"`
		Hash     string `db:"password_hash"`
		Disabled bool   `db:"disabled"`
	}
	err = s.db.GetContext(ctx, &row, `SELECT id, password_hash, disabled FROM users WHERE email = ?`, NormalizeEmail(email))
	if qsql.IsNoRows(err) {
		// Spend the same time as a real check, so timing does not reveal which emails exist.
		dummyOnce.Do(func() { dummyHash, _ = bcrypt.GenerateFromPassword([]byte("qiflow"), bcrypt.DefaultCost) })
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return "", time.Time{}, ErrBadCredentials
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if row.Disabled || bcrypt.CompareHashAndPassword([]byte(row.Hash), []byte(password)) != nil {
		return "", time.Time{}, ErrBadCredentials
	}
	expires = s.now().Add(s.SessionTTL)
	token, _, err = s.issue(ctx, row.ID, "session", "login", &expires)
	return token, expires, err
}

var (
	dummyOnce sync.Once
	dummyHash []byte
)

// CreateAPIToken issues a long-lived token for integrations (ttl 0 = no expiry).
func (s *Service) CreateAPIToken(ctx context.Context, userID int64, name string, ttl time.Duration) (string, int64, error) {
	if strings.TrimSpace(name) == "" {
		return "", 0, apperr.Field("name", "is required")
	}
	var exp *time.Time
	if ttl > 0 {
		t := s.now().Add(ttl)
		exp = &t
	}
	return s.issue(ctx, userID, "api", name, exp)
}

// SignInStaff opens a session for the user who is staff member staffUserID
// in corpID, as WeCom's OAuth vouched for them (the chat sidebar): no
// password. A staff member no user is linked to, or a disabled user, is
// ErrNotMember.
func (s *Service) SignInStaff(ctx context.Context, corpID, staffUserID string) (token string, expires time.Time, err error) {
	var id int64
	err = s.db.GetContext(ctx, &id, `SELECT u.id FROM users u JOIN user_corps m ON m.user_id = u.id
		WHERE m.corp_id = ? AND m.staff_userid = ? AND m.staff_userid <> '' AND u.disabled = 0 ORDER BY u.id LIMIT 1`, corpID, staffUserID)
	if qsql.IsNoRows(err) {
		return "", time.Time{}, ErrNotMember
	}
	if err != nil {
		return "", time.Time{}, err
	}
	expires = s.now().Add(s.SessionTTL)
	token, _, err = s.issue(ctx, id, "session", "wecom oauth", &expires)
	return token, expires, err
}

func (s *Service) issue(ctx context.Context, userID int64, kind, name string, expires *time.Time) (string, int64, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", 0, err
	}
	token := "qf_" + base64.RawURLEncoding.EncodeToString(b)
	var exp any
	if expires != nil {
		exp = qsql.Millis(*expires)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO auth_tokens (user_id, kind, name, token_hash, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		userID, kind, name, hashToken(token), exp, qsql.Millis(s.now()))
	if err != nil {
		return "", 0, err
	}
	id, _ := res.LastInsertId()
	return token, id, nil
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// Revoke ends a token (logout).
func (s *Service) Revoke(ctx context.Context, token string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL`, qsql.Millis(s.now()), hashToken(token))
	return err
}

// Authenticate resolves a bearer token to a principal acting in corpID, or in
// the user's default corp when corpID is empty.
func (s *Service) Authenticate(ctx context.Context, token, corpID string) (Principal, error) {
	if !strings.HasPrefix(token, "qf_") {
		return Principal{}, ErrUnauthenticated
	}
	var t struct {
		ID      int64  `db:"id"`
		UserID  int64  `db:"user_id"`
		Expires *int64 `db:"expires_at"`
		Revoked *int64 `db:"revoked_at"`
		Email   string `db:"email"`
		Disab   bool   `db:"disabled"`
		Lang    string `db:"lang"`
	}
	err := s.db.GetContext(ctx, &t, `SELECT t.id, t.user_id, t.expires_at, t.revoked_at, u.email, u.disabled, u.lang FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?`, hashToken(token))
	if qsql.IsNoRows(err) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	now := qsql.Millis(s.now())
	if t.Revoked != nil || t.Disab || (t.Expires != nil && *t.Expires <= now) {
		return Principal{}, ErrUnauthenticated
	}
	var m Membership
	if corpID == "" {
		err = s.db.GetContext(ctx, &m, `SELECT user_id, corp_id, role, is_default, staff_userid FROM user_corps WHERE user_id = ? ORDER BY is_default DESC, corp_id LIMIT 1`, t.UserID)
	} else {
		err = s.db.GetContext(ctx, &m, `SELECT user_id, corp_id, role, is_default, staff_userid FROM user_corps WHERE user_id = ? AND corp_id = ?`, t.UserID, corpID)
	}
	if qsql.IsNoRows(err) {
		return Principal{}, ErrNotMember
	}
	if err != nil {
		return Principal{}, err
	}
	perms, err := s.RolePermissions(ctx, m.CorpID, m.Role)
	if err != nil {
		return Principal{}, err
	}
	return Principal{UserID: t.UserID, Email: t.Email, CorpID: m.CorpID, Role: m.Role, StaffUserID: m.StaffUserID, TokenID: t.ID, Lang: t.Lang, perms: perms}, nil
}

// Langs are the console's languages, the first the default.
var Langs = []string{"zh-CN", "en"}

// SetLang records the console language a user chose.
func (s *Service) SetLang(ctx context.Context, userID int64, lang string) error {
	if !slices.Contains(Langs, lang) {
		return apperr.Field("lang", "must be one of "+strings.Join(Langs, ", "))
	}
	_, err := s.db.ExecContext(ctx, `UPDATE users SET lang = ?, updated_at = ? WHERE id = ?`, lang, qsql.Millis(s.now()), userID)
	return err
}

// CorpsOf is the corps a user belongs to, the default first.
func (s *Service) CorpsOf(ctx context.Context, userID int64) ([]Membership, error) {
	out := []Membership{}
	err := s.db.SelectContext(ctx, &out, `SELECT user_id, corp_id, role, is_default, staff_userid FROM user_corps WHERE user_id = ? ORDER BY is_default DESC, corp_id`, userID)
	return out, err
}

// RolePermissions is the role's permission set in a corp: the defaults with
// the corp's overrides applied.
func (s *Service) RolePermissions(ctx context.Context, corpID string, role Role) (map[Permission]bool, error) {
	perms := map[Permission]bool{}
	for _, p := range defaultGrants[role] {
		perms[p] = true
	}
	var overrides []struct {
		Permission string `db:"permission"`
		Allowed    bool   `db:"allowed"`
	}
	if err := s.db.SelectContext(ctx, &overrides, `SELECT permission, allowed FROM role_permissions WHERE corp_id = ? AND role = ?`, corpID, string(role)); err != nil {
		return nil, err
	}
	for _, o := range overrides {
		perms[Permission(o.Permission)] = o.Allowed
	}
	return perms, nil
}

// SetPermission grants or withdraws a permission from a role in one corp.
func (s *Service) SetPermission(ctx context.Context, corpID string, role Role, perm Permission, allowed bool) error {
	if !role.Valid() {
		return apperr.Field("role", "unknown role")
	}
	if role == RoleAdmin {
		// Taking a right from admins could leave nobody able to give it back.
		return apperr.Field("role", "admins keep every permission")
	}
	known := false
	for _, p := range Permissions {
		known = known || p == perm
	}
	if !known {
		return apperr.Field("permission", "unknown permission")
	}
	q := s.db.Upsert("role_permissions", []string{"corp_id", "role", "permission", "allowed"}, []string{"corp_id", "role", "permission"}, []string{"allowed"})
	_, err := s.db.ExecContext(ctx, q, corpID, string(role), string(perm), allowed)
	return err
}

// Team is a group of users with a manager.
type Team struct {
	ID            int64  `db:"id" json:"id"`
	CorpID        string `db:"corp_id" json:"corp_id"`
	Name          string `db:"name" json:"name"`
	ManagerUserID int64  `db:"manager_user_id" json:"manager_user_id"`
}

// CreateTeam creates a team in a corp.
func (s *Service) CreateTeam(ctx context.Context, corpID, name string, manager int64) (Team, error) {
	if strings.TrimSpace(name) == "" {
		return Team{}, apperr.Field("name", "is required")
	}
	var id int64
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO teams (corp_id, name, manager_user_id, created_at) VALUES (?, ?, ?, ?)`, corpID, name, manager, qsql.Millis(s.now()))
		if err != nil {
			return err
		}
		id, _ = res.LastInsertId()
		if manager == 0 {
			return nil
		}
		return s.teamsChanged(ctx, tx, corpID, manager)
	})
	if err != nil {
		if qsql.IsDuplicate(err) {
			return Team{}, ErrConflict
		}
		return Team{}, err
	}
	return Team{ID: id, CorpID: corpID, Name: name, ManagerUserID: manager}, nil
}

// AddTeamMember puts a user of the corp in one of the corp's teams.
func (s *Service) AddTeamMember(ctx context.Context, corpID string, teamID, userID int64) error {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM teams t JOIN user_corps m ON m.corp_id = t.corp_id AND m.user_id = ?
		WHERE t.id = ? AND t.corp_id = ?`, userID, teamID, corpID); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	q := s.db.InsertIgnoreRows("team_members", []string{"team_id", "user_id"}, []string{"team_id", "user_id"}, 1)
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, q, teamID, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // a member already
		}
		return s.teamsChanged(ctx, tx, corpID, userID)
	})
}

// IsMember reports whether the user belongs to the corp.
func (s *Service) IsMember(ctx context.Context, corpID string, userID int64) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM user_corps WHERE corp_id = ? AND user_id = ?`, corpID, userID)
	return n > 0, err
}

// ManagerOf is the manager of a user's first team (by id) that someone
// else manages; 0 when none.
func (s *Service) ManagerOf(ctx context.Context, corpID string, userID int64) (int64, error) {
	var id int64
	err := s.db.GetContext(ctx, &id, `SELECT t.manager_user_id FROM teams t JOIN team_members m ON m.team_id = t.id
		WHERE t.corp_id = ? AND m.user_id = ? AND t.manager_user_id <> 0 AND t.manager_user_id <> ? ORDER BY t.id LIMIT 1`, corpID, userID, userID)
	if qsql.IsNoRows(err) {
		return 0, nil
	}
	return id, err
}

// ManagedUsers lists the members of the teams a user manages in a corp.
func (s *Service) ManagedUsers(ctx context.Context, corpID string, manager int64) ([]int64, error) {
	var ids []int64
	err := s.db.SelectContext(ctx, &ids, `SELECT DISTINCT m.user_id FROM teams t JOIN team_members m ON m.team_id = t.id
		WHERE t.corp_id = ? AND t.manager_user_id = ? AND m.user_id <> ? ORDER BY m.user_id`, corpID, manager, manager)
	return ids, err
}

// Teams lists a corp's teams by name.
func (s *Service) Teams(ctx context.Context, corpID string) ([]Team, error) {
	out := []Team{}
	err := s.db.SelectContext(ctx, &out, `SELECT id, corp_id, name, manager_user_id FROM teams WHERE corp_id = ? ORDER BY name`, corpID)
	return out, err
}

// TeamMembership is a team and one of its members.
type TeamMembership struct {
	TeamID int64  `db:"team_id"`
	Team   string `db:"name"`
	UserID int64  `db:"user_id"`
}

// Memberships lists every team membership of a corp.
func (s *Service) Memberships(ctx context.Context, corpID string) ([]TeamMembership, error) {
	var out []TeamMembership
	err := s.db.SelectContext(ctx, &out, `SELECT t.id AS team_id, t.name, m.user_id FROM teams t JOIN team_members m ON m.team_id = t.id
		WHERE t.corp_id = ? ORDER BY t.id, m.user_id`, corpID)
	return out, err
}

// TeamNamesByUser maps each user of a corp to the names of the teams they
// are a member or the manager of.
func (s *Service) TeamNamesByUser(ctx context.Context, corpID string) (map[int64][]string, error) {
	var rows []struct {
		UserID int64  `db:"user_id"`
		Name   string `db:"name"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT m.user_id, t.name FROM teams t JOIN team_members m ON m.team_id = t.id WHERE t.corp_id = ?
		UNION SELECT t.manager_user_id, t.name FROM teams t WHERE t.corp_id = ? AND t.manager_user_id <> 0`, corpID, corpID)
	if err != nil {
		return nil, err
	}
	out := map[int64][]string{}
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], r.Name)
	}
	return out, nil
}

// TeamMembers lists a team's user ids.
func (s *Service) TeamMembers(ctx context.Context, teamID int64) ([]int64, error) {
	var ids []int64
	err := s.db.SelectContext(ctx, &ids, `SELECT user_id FROM team_members WHERE team_id = ? ORDER BY user_id`, teamID)
	return ids, err
}

// MaskMobile hides the middle of a phone number for users without pii.
func MaskMobile(m string) string {
	if len(m) < 7 {
		return strings.Repeat("*", len(m))
	}
	return m[:3] + strings.Repeat("*", len(m)-7) + m[len(m)-4:]
}

// GeneratePassword returns a random password for the first admin.
func GeneratePassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// String is for logs: never the token itself.
func (p Principal) String() string {
	return fmt.Sprintf("user %d (%s) in %s", p.UserID, p.Role, p.CorpID)
}

// StaffID returns the WeCom staff id a user is linked to in a corp, or "".
func (s *Service) StaffID(ctx context.Context, corpID string, userID int64) (string, error) {
	var id string
	err := s.db.GetContext(ctx, &id, `SELECT staff_userid FROM user_corps WHERE corp_id = ? AND user_id = ?`, corpID, userID)
	if qsql.IsNoRows(err) {
		return "", nil
	}
	return id, err
}

// APIToken is one of a user's API tokens as listed (never the token itself).
type APIToken struct {
	ID         int64  `db:"id" json:"id"`
	Name       string `db:"name" json:"name"`
	ExpiresAt  *int64 `db:"expires_at" json:"expires_at,omitempty"`
	LastUsedAt *int64 `db:"last_used_at" json:"last_used_at,omitempty"`
	CreatedAt  int64  `db:"created_at" json:"created_at"`
}

// APITokens lists a user's live API tokens, newest first.
func (s *Service) APITokens(ctx context.Context, userID int64) ([]APIToken, error) {
	out := []APIToken{}
	err := s.db.SelectContext(ctx, &out, `SELECT id, name, expires_at, last_used_at, created_at FROM auth_tokens
		WHERE user_id = ? AND kind = 'api' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY id DESC`, userID, qsql.Millis(s.now()))
	return out, err
}

// RevokeAPIToken ends one of a user's API tokens.
func (s *Service) RevokeAPIToken(ctx context.Context, userID, id int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND kind = 'api' AND revoked_at IS NULL`, qsql.Millis(s.now()), id, userID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ErrLastAdmin refuses leaving a corp without an admin.
var ErrLastAdmin = apperr.Conflict("last_admin", "the corp would be left without an admin")

// SetRole changes a member's role and WeCom userid in a corp; the corp's
// last active admin keeps the role.
func (s *Service) SetRole(ctx context.Context, corpID string, userID int64, role Role, staffUserID string) error {
	if !role.Valid() {
		return apperr.Field("role", "unknown role")
	}
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		var m Membership
		err := tx.GetContext(ctx, &m, `SELECT user_id, corp_id, role, is_default, staff_userid FROM user_corps WHERE corp_id = ? AND user_id = ?`, corpID, userID)
		if qsql.IsNoRows(err) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if m.Role == RoleAdmin && role != RoleAdmin {
			if err := s.keepAnAdmin(ctx, tx, corpID, userID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE user_corps SET role = ?, staff_userid = ? WHERE corp_id = ? AND user_id = ?`, string(role), strings.TrimSpace(staffUserID), corpID, userID)
		return err
	})
}

// SetDisabled stops (or lets again) a member of corpID sign in; every
// token of a disabled user stops working at once. Nobody disables
// themselves, and the corp's last active admin stays enabled.
func (s *Service) SetDisabled(ctx context.Context, corpID string, actor, userID int64, disabled bool) error {
	if actor == userID {
		return apperr.Field("user_id", "you cannot disable yourself")
	}
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		var role Role
		err := tx.GetContext(ctx, &role, `SELECT role FROM user_corps WHERE corp_id = ? AND user_id = ?`, corpID, userID)
		if qsql.IsNoRows(err) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if disabled && role == RoleAdmin {
			if err := s.keepAnAdmin(ctx, tx, corpID, userID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?`, disabled, qsql.Millis(s.now()), userID)
		return err
	})
}

// keepAnAdmin refuses (ErrLastAdmin) a change that takes userID from the
// corp's active admins when no other is left. A locking read: it counts
// the admins as committed and holds them until the change commits, so two
// such changes at once (each seeing the other admin in its snapshot)
// cannot both go ahead.
func (s *Service) keepAnAdmin(ctx context.Context, tx *qsql.Tx, corpID string, userID int64) error {
	var others int
	if err := tx.GetContext(ctx, &others, `SELECT COUNT(*) FROM user_corps m JOIN users u ON u.id = m.user_id
		WHERE m.corp_id = ? AND m.role = ? AND u.disabled = 0 AND m.user_id <> ?`+s.db.ForUpdate(), corpID, RoleAdmin, userID); err != nil {
		return err
	}
	if others == 0 {
		return ErrLastAdmin
	}
	return nil
}
