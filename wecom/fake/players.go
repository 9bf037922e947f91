package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qiflow/qiflow/wecom"
)

// Delivery tells how a callback fared: WeCom tries 3 times, on any status
// other than 200 or 5 s of silence.
type Delivery struct {
	Attempts int   `json:"attempts"`
	Status   int   `json:"status"` // last HTTP status, 0 when the post failed
	OK       bool  `json:"ok"`
	Err      error `json:"-"`
}

// ScanResult is what happened when a customer scanned a contact way.
type ScanResult struct {
	ExternalUserID string   `json:"external_userid"`
	UserID         string   `json:"userid"`
	State          string   `json:"state"`
	WelcomeCode    string   `json:"welcome_code"`
	CreateTime     int64    `json:"create_time"`
	Callback       Delivery `json:"callback"`
	// Plain is the callback's decrypted XML, to replay it as WeCom's retries would.
	Plain []byte `json:"-"`
}

// ErrNotFound is returned for unknown corps, ways, chats or customers.
var ErrNotFound = errors.New("fake: not found")

type outgoing struct {
	url    string
	crypto wecom.Crypto
	plain  []byte
}

func (f *Fake) outgoing(c *Corp, plain string) outgoing {
	return outgoing{url: c.CallbackURL, crypto: wecom.Crypto{Token: c.Token, AESKey: c.AESKey, ReceiverID: c.ID}, plain: []byte(plain)}
}

// send posts a callback as WeCom does: encrypted, signed, retried 3 times.
func (f *Fake) send(ctx context.Context, o outgoing) Delivery {
	var d Delivery
	if o.url == "" {
		d.Err = errors.New("fake: corp has no callback URL")
		return d
	}
	var started time.Time
	for d.Attempts < 3 {
		if d.Attempts > 0 {
			// WeCom retries on its own rhythm: an attempt every CallbackTimeout
			// (5 s), not at once after a quick refusal.
			select {
			case <-ctx.Done():
				return d
			case <-time.After(time.Until(started.Add(f.CallbackTimeout))):
			}
		}
		started = time.Now()
		d.Attempts++
		body, sig, ts, nonce, err := o.crypto.Seal(o.plain, f.clock())
		if err != nil {
			d.Err = err
			return d
		}
		u := o.url + "?" + url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}.Encode()
		pctx, cancel := context.WithTimeout(ctx, f.CallbackTimeout)
		req, _ := http.NewRequestWithContext(pctx, http.MethodPost, u, bytes.NewReader(body))
		req.Header.Set("Content-Type", "text/xml")
		resp, err := f.callbackHC.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			d.Status = resp.StatusCode
		} else {
			d.Status, d.Err = 0, err
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			d.OK, d.Err = true, nil
			return d
		}
		if ctx.Err() != nil {
			return d
		}
	}
	return d
}

func (f *Fake) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now()
}

func cdata(s string) string {
	return "<![CDATA[" + strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>") + "]]>"
}

func contactEventXML(corp string, at time.Time, changeType string, fields map[string]string, order []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<xml><ToUserName>%s</ToUserName><FromUserName>%s</FromUserName><CreateTime>%d</CreateTime><MsgType>%s</MsgType><Event>%s</Event><ChangeType>%s</ChangeType>",
		cdata(corp), cdata("sys"), at.Unix(), cdata("event"), cdata(wecom.EventExternalContact), cdata(changeType))
	for _, k := range order {
		if v, ok := fields[k]; ok && v != "" {
			fmt.Fprintf(&b, "<%s>%s</%s>", k, cdata(v), k)
		}
	}
	b.WriteString("</xml>")
	return b.String()
}

var contactOrder = []string{"UserID", "ExternalUserID", "State", "WelcomeCode", "Source", "FailReason"}

// Customer describes a WeChat user who plays a customer; empty fields are made up.
type Customer struct {
	ExternalUserID string `json:"external_userid,omitempty"`
	Name           string `json:"name,omitempty"`
	UnionID        string `json:"unionid,omitempty"`
}

func (f *Fake) customer(c *Corp, who Customer) *CustomerRecord {
	if who.ExternalUserID != "" {
		if cu := c.Customers[who.ExternalUserID]; cu != nil {
			return cu
		}
	}
	ext := who.ExternalUserID
	if ext == "" {
		ext = f.nextID("wm")
	}
	name := who.Name
	if name == "" {
		name = fmt.Sprintf("访客 Visitor %d", f.world.Seq)
	}
	cu := &CustomerRecord{Contact: wecom.ExternalContact{ExternalUserID: ext, Name: name, Type: 1, Gender: 1 + rand.IntN(2), UnionID: who.UnionID},
		Follows: map[string]*wecom.FollowUser{}}
	c.Customers[ext] = cu
	return cu
}

// Scan plays a customer scanning a contact way's QR code and adding the staff
// member WeCom picks among the way's users. It posts add_external_contact.
func (f *Fake) Scan(ctx context.Context, corpID, configID string, who Customer) (ScanResult, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil {
		f.mu.Unlock()
		return ScanResult{}, fmt.Errorf("%w: corp %s", ErrNotFound, corpID)
	}
	w := c.ContactWays[configID]
	if w == nil {
		f.mu.Unlock()
		return ScanResult{}, fmt.Errorf("%w: contact way %s", ErrNotFound, configID)
	}
	users := append([]string(nil), w.User...)
	for _, p := range w.Party {
		for _, id := range c.staffIDs() {
			for _, d := range c.Staff[id].Department {
				if d == p {
					users = append(users, id)
				}
			}
		}
	}
	if len(users) == 0 {
		f.mu.Unlock()
		return ScanResult{}, fmt.Errorf("%w: contact way %s has no users", ErrNotFound, configID)
	}
	userID := users[rand.IntN(len(users))]
	res, o := f.addLocked(c, userID, who, w.State, 1)
	f.mu.Unlock()
	res.Callback = f.send(ctx, o)
	return res, nil
}

// Add plays a customer adding a staff member without a code (search, card, …):
// add_external_contact with no State.
func (f *Fake) Add(ctx context.Context, corpID, userID string, who Customer, addWay int) (ScanResult, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil || c.Staff[userID] == nil {
		f.mu.Unlock()
		return ScanResult{}, fmt.Errorf("%w: corp %s or staff %s", ErrNotFound, corpID, userID)
	}
	res, o := f.addLocked(c, userID, who, "", addWay)
	f.mu.Unlock()
	res.Callback = f.send(ctx, o)
	return res, nil
}

func (f *Fake) addLocked(c *Corp, userID string, who Customer, state string, addWay int) (ScanResult, outgoing) {
	now := f.now()
	cu := f.customer(c, who)
	cu.Follows[userID] = &wecom.FollowUser{UserID: userID, CreateTime: now.Unix(), AddWay: addWay, State: state}
	code := f.nextID("wc")
	c.Welcome[code] = &WelcomeCode{UserID: userID, ExternalUserID: cu.Contact.ExternalUserID, IssuedAt: now.UnixMilli()}
	f.dirty = true
	x := contactEventXML(c.ID, now, wecom.ChangeAddExternalContact, map[string]string{
		"UserID": userID, "ExternalUserID": cu.Contact.ExternalUserID, "State": state, "WelcomeCode": code}, contactOrder)
	return ScanResult{ExternalUserID: cu.Contact.ExternalUserID, UserID: userID, State: state, WelcomeCode: code, CreateTime: now.Unix(), Plain: []byte(x)}, f.outgoing(c, x)
}

// CustomerDeletesStaff plays a customer removing the staff member: del_follow_user.
func (f *Fake) CustomerDeletesStaff(ctx context.Context, corpID, externalUserID, userID string) (Delivery, error) {
	return f.unfollow(ctx, corpID, externalUserID, userID, wecom.ChangeDelFollowUser, "")
}

// StaffDeletesCustomer plays a staff member removing a customer: del_external_contact.
func (f *Fake) StaffDeletesCustomer(ctx context.Context, corpID, userID, externalUserID string) (Delivery, error) {
	return f.unfollow(ctx, corpID, externalUserID, userID, wecom.ChangeDelExternalContact, "")
}

// Transfer moves a customer from one staff member to another, as a
// reassignment does: del_external_contact with Source DELETE_BY_TRANSFER for
// the old one, add_external_contact (add way 202) for the new one.
func (f *Fake) Transfer(ctx context.Context, corpID, externalUserID, fromUserID, toUserID string) error {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil || c.Staff[toUserID] == nil {
		f.mu.Unlock()
		return fmt.Errorf("%w: corp or staff", ErrNotFound)
	}
	f.mu.Unlock()
	if d, err := f.unfollow(ctx, corpID, externalUserID, fromUserID, wecom.ChangeDelExternalContact, wecom.SourceDeleteByTransfer); err != nil || !d.OK {
		return errors.Join(err, d.Err)
	}
	f.mu.Lock()
	_, o := f.addLocked(c, toUserID, Customer{ExternalUserID: externalUserID}, "", 202)
	f.mu.Unlock()
	d := f.send(ctx, o)
	return d.Err
}

func (f *Fake) unfollow(ctx context.Context, corpID, externalUserID, userID, changeType, source string) (Delivery, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil || c.Customers[externalUserID] == nil || c.Customers[externalUserID].Follows[userID] == nil {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: no follow of %s by %s", ErrNotFound, externalUserID, userID)
	}
	delete(c.Customers[externalUserID].Follows, userID)
	f.dirty = true
	x := contactEventXML(c.ID, f.now(), changeType, map[string]string{"UserID": userID, "ExternalUserID": externalUserID, "Source": source}, contactOrder)
	o := f.outgoing(c, x)
	f.mu.Unlock()
	return f.send(ctx, o), nil
}

// EditCustomer plays a staff member editing a customer in the WeCom app
// (remark, description): edit_external_contact.
func (f *Fake) EditCustomer(ctx context.Context, corpID, userID, externalUserID, remark, description string) (Delivery, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: corp %s", ErrNotFound, corpID)
	}
	fu, e := c.follow(userID, externalUserID)
	if e != nil {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: %s", ErrNotFound, e.msg)
	}
	fu.Remark, fu.Description = remark, description
	f.dirty = true
	x := contactEventXML(c.ID, f.now(), wecom.ChangeEditExternalContact, map[string]string{"UserID": userID, "ExternalUserID": externalUserID}, contactOrder)
	o := f.outgoing(c, x)
	f.mu.Unlock()
	return f.send(ctx, o), nil
}

// CreateGroup makes a customer group owned by a staff member, as staff do in
// the WeCom app; it posts change_external_chat create.
func (f *Fake) CreateGroup(ctx context.Context, corpID, owner, name string) (string, Delivery, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil || c.Staff[owner] == nil {
		f.mu.Unlock()
		return "", Delivery{}, fmt.Errorf("%w: corp or owner", ErrNotFound)
	}
	id := f.createGroupLocked(c, owner, name)
	o := f.outgoing(c, chatXML(c.ID, f.now(), "create", id, "", nil, "", "", 0))
	f.mu.Unlock()
	return id, f.send(ctx, o), nil
}

// SeedGroups gives a corp customer groups without posting callbacks (the
// sandbox's first start: the initial import finds them).
func (f *Fake) SeedGroups(corpID, owner string, names ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.world.Corps[corpID]
	if c == nil || c.Staff[owner] == nil {
		return nil
	}
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = f.createGroupLocked(c, owner, n)
	}
	return ids
}

func (f *Fake) createGroupLocked(c *Corp, owner, name string) string {
	id := f.nextID("wr")
	now := f.now()
	c.Groups[id] = &Group{Version: 1, Chat: wecom.GroupChat{ChatID: id, Name: name, Owner: owner, CreateTime: now.Unix(),
		MemberList:    []wecom.GroupMember{{UserID: owner, Type: 1, JoinTime: now.Unix(), JoinScene: 1}},
		MemberVersion: "v1"}}
	f.dirty = true
	return id
}

func chatXML(corp string, at time.Time, changeType, chatID, detail string, members []string, lastVer, curVer string, scene int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<xml><ToUserName>%s</ToUserName><FromUserName>%s</FromUserName><CreateTime>%d</CreateTime><MsgType>%s</MsgType><Event>%s</Event><ChatId>%s</ChatId><ChangeType>%s</ChangeType>",
		cdata(corp), cdata("sys"), at.Unix(), cdata("event"), cdata(wecom.EventExternalChat), cdata(chatID), cdata(changeType))
	if detail != "" {
		fmt.Fprintf(&b, "<UpdateDetail>%s</UpdateDetail>", cdata(detail))
		if detail == wecom.ChatAddMember {
			fmt.Fprintf(&b, "<JoinScene>%d</JoinScene>", scene)
		}
		if detail == wecom.ChatDelMember {
			fmt.Fprintf(&b, "<QuitScene>%d</QuitScene>", scene)
		}
		fmt.Fprintf(&b, "<MemChangeCnt>%d</MemChangeCnt><MemChangeList>", len(members))
		for _, m := range members {
			fmt.Fprintf(&b, "<Item>%s</Item>", cdata(m))
		}
		fmt.Fprintf(&b, "</MemChangeList><LastMemVer>%s</LastMemVer><CurMemVer>%s</CurMemVer>", cdata(lastVer), cdata(curVer))
	}
	b.WriteString("</xml>")
	return b.String()
}

// JoinResult is what happened when a customer joined through a join way.
type JoinResult struct {
	ChatID   string   `json:"chat_id"`
	Created  bool     `json:"created"` // a new room was created (auto_create_room)
	Callback Delivery `json:"callback"`
}

// JoinGroup plays a customer scanning a join way: WeCom puts them in the first
// listed group under 200 members (or creates a room when allowed) and posts
// change_external_chat update add_member.
func (f *Fake) JoinGroup(ctx context.Context, corpID, configID string, who Customer) (JoinResult, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil || c.JoinWays[configID] == nil {
		f.mu.Unlock()
		return JoinResult{}, fmt.Errorf("%w: join way %s", ErrNotFound, configID)
	}
	w := c.JoinWays[configID]
	var g *Group
	for _, id := range w.ChatIDList {
		if x := c.Groups[id]; x != nil && len(x.Chat.MemberList) < maxQRJoinGroupMember {
			g = x
			break
		}
	}
	res := JoinResult{}
	if g == nil {
		if w.AutoCreateRoom != 1 || len(w.ChatIDList) == 0 {
			f.mu.Unlock()
			return JoinResult{}, errors.New("fake: every group of the join way is full")
		}
		owner := c.Groups[w.ChatIDList[0]].Chat.Owner
		base := w.RoomBaseName
		if base == "" {
			base = "Group"
		}
		w.RoomBaseID++
		id := f.createGroupLocked(c, owner, fmt.Sprintf("%s%d", base, w.RoomBaseID))
		if len(w.ChatIDList) < maxJoinWayChats {
			w.ChatIDList = append(w.ChatIDList, id)
		}
		g, res.Created = c.Groups[id], true
	}
	cu := f.customer(c, who)
	now := f.now()
	g.Chat.MemberList = append(g.Chat.MemberList, wecom.GroupMember{UserID: cu.Contact.ExternalUserID, Type: 2, JoinTime: now.Unix(),
		JoinScene: 3, Name: cu.Contact.Name, State: w.State})
	last := g.Chat.MemberVersion
	g.Version++
	g.Chat.MemberVersion = fmt.Sprintf("v%d", g.Version)
	f.dirty = true
	res.ChatID = g.Chat.ChatID
	o := f.outgoing(c, chatXML(c.ID, now, "update", g.Chat.ChatID, wecom.ChatAddMember, []string{cu.Contact.ExternalUserID}, last, g.Chat.MemberVersion, 3))
	f.mu.Unlock()
	res.Callback = f.send(ctx, o)
	return res, nil
}

// LeaveGroup plays a customer leaving a group: change_external_chat update del_member.
func (f *Fake) LeaveGroup(ctx context.Context, corpID, chatID, externalUserID string) (Delivery, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil || c.Groups[chatID] == nil {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: chat %s", ErrNotFound, chatID)
	}
	g := c.Groups[chatID]
	idx := -1
	for i, mb := range g.Chat.MemberList {
		if mb.UserID == externalUserID {
			idx = i
		}
	}
	if idx < 0 {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: %s is not in %s", ErrNotFound, externalUserID, chatID)
	}
	g.Chat.MemberList = append(g.Chat.MemberList[:idx], g.Chat.MemberList[idx+1:]...)
	last := g.Chat.MemberVersion
	g.Version++
	g.Chat.MemberVersion = fmt.Sprintf("v%d", g.Version)
	f.dirty = true
	o := f.outgoing(c, chatXML(c.ID, f.now(), "update", chatID, wecom.ChatDelMember, []string{externalUserID}, last, g.Chat.MemberVersion, 0))
	f.mu.Unlock()
	return f.send(ctx, o), nil
}

// AdminAddTag plays an admin adding a tag in WeCom's console: change_external_tag create.
func (f *Fake) AdminAddTag(ctx context.Context, corpID, groupName, tagName string) (string, Delivery, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil {
		f.mu.Unlock()
		return "", Delivery{}, fmt.Errorf("%w: corp %s", ErrNotFound, corpID)
	}
	var g *wecom.TagGroup
	for _, x := range c.TagGroups {
		if x.GroupName == groupName {
			g = x
		}
	}
	if g == nil {
		g = &wecom.TagGroup{GroupID: f.nextID("etg"), GroupName: groupName, CreateTime: f.now().Unix()}
		c.TagGroups = append(c.TagGroups, g)
	}
	id := f.nextID("et")
	g.Tags = append(g.Tags, wecom.CorpTag{ID: id, Name: tagName, CreateTime: f.now().Unix()})
	f.dirty = true
	o := f.outgoing(c, tagXML(c.ID, f.now(), "create", "tag", id))
	f.mu.Unlock()
	return id, f.send(ctx, o), nil
}

// AdminRenameTag plays an admin renaming a tag or tag group: change_external_tag update.
func (f *Fake) AdminRenameTag(ctx context.Context, corpID, id, name string) (Delivery, error) {
	return f.adminTag(ctx, corpID, id, func(c *Corp) (string, string, bool) {
		for _, g := range c.TagGroups {
			if g.GroupID == id {
				g.GroupName = name
				return "update", "tag_group", true
			}
		}
		if g, i := c.findTag(id); g != nil {
			g.Tags[i].Name = name
			return "update", "tag", true
		}
		return "", "", false
	})
}

// AdminDeleteTag plays an admin deleting a tag or tag group: change_external_tag delete.
func (f *Fake) AdminDeleteTag(ctx context.Context, corpID, id string) (Delivery, error) {
	return f.adminTag(ctx, corpID, id, func(c *Corp) (string, string, bool) {
		for i, g := range c.TagGroups {
			if g.GroupID == id {
				c.TagGroups = append(c.TagGroups[:i], c.TagGroups[i+1:]...)
				return "delete", "tag_group", true
			}
		}
		if g, i := c.findTag(id); g != nil {
			g.Tags = append(g.Tags[:i], g.Tags[i+1:]...)
			return "delete", "tag", true
		}
		return "", "", false
	})
}

func (f *Fake) adminTag(ctx context.Context, corpID, id string, change func(c *Corp) (changeType, tagType string, ok bool)) (Delivery, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: corp %s", ErrNotFound, corpID)
	}
	ct, tt, ok := change(c)
	if !ok {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: tag %s", ErrNotFound, id)
	}
	f.dirty = true
	o := f.outgoing(c, tagXML(c.ID, f.now(), ct, tt, id))
	f.mu.Unlock()
	return f.send(ctx, o), nil
}

func tagXML(corp string, at time.Time, changeType, tagType, id string) string {
	return fmt.Sprintf("<xml><ToUserName>%s</ToUserName><FromUserName>%s</FromUserName><CreateTime>%d</CreateTime><MsgType>%s</MsgType><Event>%s</Event><Id>%s</Id><TagType>%s</TagType><ChangeType>%s</ChangeType></xml>",
		cdata(corp), cdata("sys"), at.Unix(), cdata("event"), cdata(wecom.EventExternalTag), cdata(id), cdata(tagType), cdata(changeType))
}

// Post sends an arbitrary plaintext callback for a corp (replays, raw events).
func (f *Fake) Post(ctx context.Context, corpID string, plain []byte) (Delivery, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil {
		f.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: corp %s", ErrNotFound, corpID)
	}
	o := f.outgoing(c, string(plain))
	f.mu.Unlock()
	return f.send(ctx, o), nil
}

// ClickLink plays a customer opening an acquisition link (with its
// customer_channel) and adding the staff member WeCom picks: the add's State
// is the customer_channel.
func (f *Fake) ClickLink(ctx context.Context, corpID, linkID, customerChannel string, who Customer) (ScanResult, error) {
	f.mu.Lock()
	c := f.world.Corps[corpID]
	if c == nil || c.Links[linkID] == nil {
		f.mu.Unlock()
		return ScanResult{}, fmt.Errorf("%w: link %s", ErrNotFound, linkID)
	}
	if len(customerChannel) > 64 {
		f.mu.Unlock()
		return ScanResult{}, errors.New("fake: customer_channel exceeds 64 bytes")
	}
	users := c.Links[linkID].Users
	res, o := f.addLocked(c, users[rand.IntN(len(users))], who, customerChannel, 0)
	f.mu.Unlock()
	res.Callback = f.send(ctx, o)
	return res, nil
}
