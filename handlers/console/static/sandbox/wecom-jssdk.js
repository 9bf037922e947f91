// A stand-in for WeCom's JS-SDK (@wecom/jssdk) in the sandbox, where no
// WeCom client is around the page. It offers what Qiflow's sidebar uses:
// ww.register, whose signature callbacks it calls and checks the way the
// client would (each a 40-hex SHA-1 for this page's URL with a fresh
// timestamp), and ww.getCurExternalContact, which answers the customer in
// the page's ?external_userid=, else the first the signed-in staff member
// follows.
"use strict";
window.ww = (() => {
  let registered = null;
  const check = (name, s) => {
    if (!s || !/^[0-9a-f]{40}$/.test(s.signature) || !s.nonceStr || Math.abs(Date.now() / 1000 - Number(s.timestamp)) > 300) {
      throw { errMsg: name + ":fail invalid signature" };
    }
  };
  return {
    SDK_VERSION: "sandbox",
    register(options) {
      registered = options;
    },
    async getCurExternalContact() {
      if (!registered) throw { errMsg: "getCurExternalContact:fail not registered" };
      const url = location.href.split("#")[0];
      check("config", await registered.getConfigSignature(url));
      check("agentConfig", await registered.getAgentConfigSignature(url));
      let id = new URLSearchParams(location.search).get("external_userid");
      if (!id) {
        const r = await fetch("/sidebar/customers", { credentials: "same-origin" });
        const list = r.ok ? (await r.json()).customers : [];
        if (!list.length) throw { errMsg: "getCurExternalContact:fail without context of external contact" };
        id = list[0];
      }
      return { errMsg: "getCurExternalContact:ok", userId: id };
    },
  };
})();
