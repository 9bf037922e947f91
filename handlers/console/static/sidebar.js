// Qiflow's WeCom chat sidebar: register with the JS-SDK (the signatures
// come from Qiflow, which holds the tickets), ask which customer the chat is
// with, and load their card.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const body = document.body;
  const box = document.getElementById("contact");
  const sign = (agent) => async (url) => {
    const r = await fetch("/sidebar/signature?agent=" + (agent ? 1 : 0) + "&url=" + encodeURIComponent(url), { credentials: "same-origin" });
    if (!r.ok) throw new Error("signature: HTTP " + r.status);
    return r.json();
  };
  ww.register({
    corpId: body.dataset.corp,
    agentId: body.dataset.agent,
    jsApiList: ["getCurExternalContact"],
    getConfigSignature: sign(false),
    getAgentConfigSignature: sign(true),
  });
  ww.getCurExternalContact()
    .then((res) => htmx.ajax("GET", "/sidebar/contact?external_userid=" + encodeURIComponent(res.userId), { target: "#contact", swap: "innerHTML" }))
    .then(() => box.removeAttribute("aria-busy"))
    .catch((err) => {
      box.removeAttribute("aria-busy");
      box.textContent = body.dataset.noContact + " (" + ((err && (err.errMsg || err.message)) || err) + ")";
    });
});
