// Package wecom is Qiflow's only door to WeCom: callback crypto, typed
// events, the Client interface over silenceper/wechat/v2 with its token cache,
// rate limiter and error codes. wecom/directory mirrors WeCom's directory;
// wecom/fake is the fake WeCom used by tests and the sandbox.
package wecom

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/silenceper/wechat/v2/util"
)

// Callback errors, each mapped to its own HTTP status by the gateway.
var (
	ErrBadSignature = errors.New("wecom: msg_signature does not match")
	ErrDecrypt      = errors.New("wecom: cannot decrypt message")
	ErrReceiver     = errors.New("wecom: message is for another receiver")
	ErrMalformed    = errors.New("wecom: malformed message")
)

// Crypto signs, encrypts and decrypts callback messages for one corp app
// (WXBizMsgCrypt). The AES work is silenceper's util, which pads to 32-byte
// blocks as WeCom does; signatures are compared in constant time.
type Crypto struct {
	Token      string
	AESKey     string // the 43-character EncodingAESKey
	ReceiverID string // the CorpID for a self-built app
}

// Sign computes msg_signature over token, timestamp, nonce and the encrypted text.
func (c Crypto) Sign(timestamp, nonce, encrypt string) string {
	return util.Signature(c.Token, timestamp, nonce, encrypt)
}

func (c Crypto) verify(signature, timestamp, nonce, encrypt string) error {
	want := c.Sign(timestamp, nonce, encrypt)
	if subtle.ConstantTimeCompare([]byte(want), []byte(signature)) != 1 {
		return ErrBadSignature
	}
	return nil
}

// VerifyURL answers WeCom's GET URL verification: it checks the signature and
// returns the decrypted echostr, to be written back bare.
func (c Crypto) VerifyURL(signature, timestamp, nonce, echostr string) ([]byte, error) {
	if err := c.verify(signature, timestamp, nonce, echostr); err != nil {
		return nil, err
	}
	return c.decrypt(echostr)
}

type envelope struct {
	XMLName    xml.Name `xml:"xml"`
	ToUserName string   `xml:"ToUserName"`
	Encrypt    string   `xml:"Encrypt"`
	AgentID    string   `xml:"AgentID"`
}

// Open checks a POSTed callback's signature and returns the decrypted XML.
func (c Crypto) Open(signature, timestamp, nonce string, body []byte) ([]byte, error) {
	var env envelope
	if err := xml.Unmarshal(body, &env); err != nil || env.Encrypt == "" {
		return nil, fmt.Errorf("%w: no <Encrypt> element", ErrMalformed)
	}
	if err := c.verify(signature, timestamp, nonce, env.Encrypt); err != nil {
		return nil, err
	}
	return c.decrypt(env.Encrypt)
}

func (c Crypto) decrypt(encrypt string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(encrypt)
	if err != nil {
		return nil, ErrDecrypt
	}
	key, err := base64.StdEncoding.DecodeString(c.AESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrDecrypt
	}
	// silenceper's AESDecryptMsg unpads 32-byte PKCS#7 blocks as WeCom pads them.
	_, msg, receiver, err := util.AESDecryptMsg(raw, key)
	if err != nil {
		return nil, ErrDecrypt
	}
	if subtle.ConstantTimeCompare(receiver, []byte(c.ReceiverID)) != 1 {
		return nil, ErrReceiver
	}
	return msg, nil
}

// Seal encrypts plaintext into a callback body as WeCom sends it, returning
// the body and the query parameters to post it with.
func (c Crypto) Seal(plaintext []byte, now time.Time) (body []byte, signature, timestamp, nonce string, err error) {
	random := make([]byte, 16)
	if _, err := rand.Read(random); err != nil {
		return nil, "", "", "", err
	}
	// WeCom's random prefix is 16 printable characters.
	random = []byte(hex.EncodeToString(random)[:16])
	enc, err := util.EncryptMsg(random, plaintext, c.ReceiverID, c.AESKey)
	if err != nil {
		return nil, "", "", "", err
	}
	timestamp = strconv.FormatInt(now.Unix(), 10)
	nb := make([]byte, 5)
	_, _ = rand.Read(nb)
	nonce = strconv.FormatUint(uint64(nb[0])<<32|uint64(nb[1])<<24|uint64(nb[2])<<16|uint64(nb[3])<<8|uint64(nb[4]), 10)
	signature = c.Sign(timestamp, nonce, string(enc))
	body, err = xml.Marshal(struct {
		XMLName    xml.Name `xml:"xml"`
		ToUserName cdata    `xml:"ToUserName"`
		Encrypt    cdata    `xml:"Encrypt"`
	}{ToUserName: cdata{c.ReceiverID}, Encrypt: cdata{string(enc)}})
	return body, signature, timestamp, nonce, err
}

type cdata struct {
	Value string `xml:",cdata"`
}
