// The sandbox workspace page. It renders the snapshots the server streams (server-sent
// events) and turns what a person does into calls of the sandbox's small JSON API, which
// hands them to the product the way Slack and email would.
"use strict";

// A few emoji for the moment before the full table (Slack's shortcodes, from the server's
// `emoji` package: /api/emoji) has loaded, or if it cannot.
const EMOJI = {
  white_check_mark: "✅", pencil2: "✏️", x: "❌", "+1": "👍", "-1": "👎", eyes: "👀",
  hourglass_flowing_sand: "⏳", raised_hand: "✋", raising_hand: "🙋", warning: "⚠️",
  alarm_clock: "⏰", no_entry: "⛔", mag: "🔍", information_source: "ℹ️",
  double_vertical_bar: "⏸️", arrow_forward: "▶️",
};
let emojiNames = {};

function emoji(name) {
  return emojiNames[name] || EMOJI[name];
}

async function loadEmoji() {
  try {
    const response = await fetch("/api/emoji");
    if (response.ok) emojiNames = await response.json();
  } catch (_) { /* the short table above still shows the product's own */ }
}

const QUICK_REACTIONS = ["white_check_mark", "pencil2", "x", "+1"];
const COLORS = ["#2eb67d", "#e01e5a", "#36c5f0", "#ecb22e", "#4a154b", "#1264a3"];

const ui = {
  user: localStorage.getItem("sandbox.user") || "U0REQUESTER",
  channel: localStorage.getItem("sandbox.channel") || "C0SUPPORT",
  view: "channel", // or "mail"
  thread: null, // {channel, ts}
  assistant: null, // the side panel's thread, {channel, ts}, while the panel is open
  modalId: null,
};
let state = null;

const $ = (id) => document.getElementById(id);

// --- talking to the sandbox ---------------------------------------------------------------

async function api(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await response.json(); } catch (_) { /* an empty or plain-text answer */ }
  if (!response.ok) toast(answer.error || `the sandbox answered ${response.status}`);
  return answer;
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("snapshot", (event) => {
    state = JSON.parse(event.data);
    render();
  });
}

// --- Slack's mrkdwn, simply ---------------------------------------------------------------

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function unescapeSlack(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function userName(id) {
  const user = state && state.users.find((u) => u.id === id);
  return user ? user.name : id;
}

function channelName(id) {
  const channel = state && state.channels.find((c) => c.id === id);
  return channel ? channel.name : id;
}

function anchor(url, label) {
  const safeUrl = /^(https?:|mailto:)/.test(url) ? url : "#";
  return `<a href="${escapeHtml(safeUrl)}" target="_blank" rel="noopener">${escapeHtml(label)}</a>`;
}

function link(token) {
  // One <...> token of Slack's markup, as HTML.
  if (token.startsWith("@")) {
    const id = token.slice(1).split("|")[0];
    return `<span class="mention">@${escapeHtml(userName(id))}</span>`;
  }
  if (token.startsWith("#")) {
    const [id, name] = token.slice(1).split("|");
    return `<span class="mention">#${escapeHtml(name || channelName(id))}</span>`;
  }
  if (token.startsWith("!")) {
    return `<span class="mention">@${escapeHtml(token.slice(1).split("|")[0].replace(/^subteam\^/, ""))}</span>`;
  }
  const [url, label] = token.split("|");
  const shown = unescapeSlack(label || url).replace(/^mailto:/, "");
  return anchor(unescapeSlack(url), shown);
}

const BARE_URL = /\bhttps?:\/\/[^\s<>\u0000]+[^\s<>\u0000.,;:!?)\]'"*_~]/g;

// Slack's mrkdwn (and the Markdown of streamed messages, which Slack renders too): links,
// code, bold, italics, strike-through, emoji, quotes, lists and headings.
function mrkdwn(text) {
  if (!text) return "";
  const kept = [];
  const keep = (html) => `\u0000${kept.push(html) - 1}\u0000`;
  let out = text.replace(/```\n?([\s\S]*?)```/g, (_, code) => keep(`<pre>${escapeHtml(unescapeSlack(code))}</pre>`));
  out = out.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeHtml(unescapeSlack(code))}</code>`));
  out = out.replace(/<([^<>\s][^<>]*)>/g, (_, token) => keep(link(token)));
  out = out.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, (_, label, url) => keep(anchor(unescapeSlack(url), unescapeSlack(label))));
  out = out.replace(BARE_URL, (url) => keep(anchor(unescapeSlack(url), unescapeSlack(url))));
  out = escapeHtml(unescapeSlack(out));
  out = out.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
  out = out.replace(/(^|[\s(>\u0000])\*([^*\s][^*\n]*?)\*(?=[\s).,:;!?<\u0000]|$)/gm, "$1<strong>$2</strong>");
  out = out.replace(/(^|[\s(>\u0000])_([^_\s][^_\n]*?)_(?=[\s).,:;!?<\u0000]|$)/gm, "$1<em>$2</em>");
  out = out.replace(/(^|[\s(>\u0000])~([^~\s][^~\n]*?)~(?=[\s).,:;!?<\u0000]|$)/gm, "$1<del>$2</del>");
  out = out.replace(/:([a-z0-9_+-]+):/g, (whole, name) => emoji(name) || whole);
  return lines(out).replace(/\u0000(\d+)\u0000/g, (_, index) => kept[Number(index)]);
}

// Line by line: "- ", "• " or "* " items and "1. " items become lists, "> " lines a quote,
// "# " lines a heading; other lines are kept, with line breaks between them.
function lines(html) {
  const out = [];
  let open = null; // "ul", "ol", "blockquote" or null
  let text = [];
  const flushText = () => { if (text.length) out.push(text.join("<br>")); text = []; };
  const close = () => { if (open) out.push(`</${open}>`); open = null; };
  const start = (tag, cls) => {
    if (open === tag) return;
    flushText(); close();
    out.push(`<${tag}${cls ? ` class="${cls}"` : ""}>`);
    open = tag;
  };
  for (const line of html.split("\n")) {
    let m;
    if ((m = line.match(/^\s*(?:•|-|\*)\s+(.+)$/))) { start("ul", "mrkdwn-list"); out.push(`<li>${m[1]}</li>`); }
    else if ((m = line.match(/^\s*\d{1,3}[.)]\s+(.+)$/))) { start("ol", "mrkdwn-list"); out.push(`<li>${m[1]}</li>`); }
    else if ((m = line.match(/^&gt; ?(.*)$/))) { start("blockquote"); out.push(`${m[1]}<br>`); }
    else if ((m = line.match(/^#{1,3}\s+(.+)$/))) { close(); flushText(); out.push(`<div class="mrkdwn-heading">${m[1]}</div>`); }
    else { close(); text.push(line); }
  }
  flushText(); close();
  return out.join("").replace(/<br><\/blockquote>/g, "</blockquote>");
}

function plainText(object) {
  if (!object) return "";
  // plain_text shows exactly as written, line breaks included (an email's body on a card).
  return object.type === "mrkdwn" ? mrkdwn(object.text) : escapeHtml(object.text || "").replace(/\n/g, "<br>");
}

// --- Block Kit, the parts the product uses --------------------------------------------------

function button(element, blockId) {
  const style = element.style ? ` ${element.style}` : "";
  return `<button type="button" class="block-button${style}" data-action-id="${escapeHtml(element.action_id)}"`
    + ` data-block-id="${escapeHtml(blockId || "")}" data-value="${escapeHtml(element.value || "")}">`
    + `${escapeHtml(element.text ? element.text.text : "")}</button>`;
}

// Slack's feedback_buttons element: two buttons under one action_id; the value sent says
// which was clicked. Its labels are emoji, so the accessibility label is the tooltip.
function feedbackButtons(element, blockId) {
  return ["positive_button", "negative_button"].map((side) => {
    const half = element[side] || {};
    return `<button type="button" class="block-button feedback-button" data-action-id="${escapeHtml(element.action_id)}"`
      + ` data-block-id="${escapeHtml(blockId || "")}" data-value="${escapeHtml(half.value || "")}"`
      + ` title="${escapeHtml(half.accessibility_label || "")}" aria-label="${escapeHtml(half.accessibility_label || "")}">`
      + `${escapeHtml(half.text ? half.text.text : "")}</button>`;
  }).join("");
}

function contextActionHtml(element, blockId) {
  if (element.type === "feedback_buttons") return feedbackButtons(element, blockId);
  if (element.type === "icon_button") return button(element, blockId);
  return "";
}

function blocksHtml(blocks, fallbackText) {
  if (!blocks || blocks.length === 0) return `<div class="body">${mrkdwn(fallbackText)}</div>`;
  const parts = blocks.map((block) => {
    switch (block.type) {
      case "section": {
        const fields = (block.fields || []).map(plainText).join("<br>");
        const accessory = block.accessory && block.accessory.type === "button" ? button(block.accessory, block.block_id) : "";
        return `<div class="body">${plainText(block.text)}${fields ? `<br>${fields}` : ""}${accessory}</div>`;
      }
      case "header":
        return `<div class="body"><strong>${plainText(block.text)}</strong></div>`;
      case "context":
        return `<div class="block-context">${(block.elements || []).map((e) => e.type === "image" ? "" : plainText(e)).join(" ")}</div>`;
      case "divider":
        return "<hr>";
      case "actions":
        return `<div class="block-actions">${(block.elements || []).filter((e) => e.type === "button").map((e) => button(e, block.block_id)).join("")}</div>`;
      case "context_actions":
        return `<div class="block-context-actions">${(block.elements || []).map((e) => contextActionHtml(e, block.block_id)).join("")}</div>`;
      default:
        return "";
    }
  });
  const shown = parts.join("");
  return shown || `<div class="body">${mrkdwn(fallbackText)}</div>`;
}

// --- messages -------------------------------------------------------------------------------

function initials(user) {
  const name = user ? user.real_name || user.name : "?";
  return name.split(" ").map((w) => w[0]).join("").slice(0, 2).toUpperCase();
}

function avatar(userId) {
  const user = state.users.find((u) => u.id === userId);
  const color = COLORS[[...(userId || "?")].reduce((sum, c) => sum + c.charCodeAt(0), 0) % COLORS.length];
  return `<div class="avatar" style="background:${color}">${escapeHtml(initials(user))}</div>`;
}

function clock(ts) {
  const date = new Date(Number(ts) * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageHtml(message, channel, { inThread = false, ephemeral = false } = {}) {
  const user = state.users.find((u) => u.id === message.user);
  const badge = message.is_bot ? '<span class="app-badge">APP</span>' : "";
  const reactions = (message.reactions || []).map((r) => {
    const mine = r.users.includes(ui.user) ? " mine" : "";
    return `<button type="button" class="reaction${mine}" data-name="${escapeHtml(r.name)}" title=":${escapeHtml(r.name)}:">`
      + `${emoji(r.name) || `:${escapeHtml(r.name)}:`} <span class="count">${r.users.length}</span></button>`;
  }).join("");
  const quick = ephemeral ? "" : `<div class="quick-actions">${QUICK_REACTIONS.map((name) =>
    `<button type="button" class="quick-react" data-name="${name}" title="React :${name}:">${emoji(name)}</button>`).join("")}`
    + (inThread ? "" : '<button type="button" class="open-thread" title="Reply in thread">💬</button>') + "</div>";
  const replies = !inThread && message.replies && message.replies.length
    ? `<button type="button" class="thread-link open-thread">${message.replies.length} ${message.replies.length === 1 ? "reply" : "replies"}</button>`
    : "";
  const note = ephemeral ? '<div class="ephemeral-note">Only visible to you</div>' : "";
  return `<li class="message${ephemeral ? " ephemeral" : ""}${message.is_bot ? " from-bot" : ""}" data-ts="${message.ts}" data-channel="${channel}"`
    + ` data-user="${escapeHtml(message.user || "")}">`
    + `${avatar(message.user)}<div class="content"><div><span class="author">${escapeHtml(user ? user.name : message.user || "")}</span>${badge}`
    + `<span class="time">${clock(message.ts)}</span>${message.edited ? ' <span class="edited">(edited)</span>' : ""}</div>`
    + `${note}${blocksHtml(message.blocks, message.text)}<div class="reactions">${reactions}</div>${replies}</div>${quick}</li>`;
}

// Replace a list's items, keeping it scrolled to the end if it was (`scroller` is the
// element that scrolls, when it is not the list itself).
function keepScrolled(scroller, html, list = scroller) {
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  if (list.innerHTML === html) return;
  list.innerHTML = html;
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

function visibleEphemeral(channel, threadTs) {
  return state.ephemeral.filter((m) => m.user === ui.user && m.channel === channel
    && (threadTs ? m.thread_ts === threadTs : !m.thread_ts));
}

// Channels, and the viewer's own direct-message conversation with the app.
function visibleChannels() {
  return state.channels.filter((c) => !c.im_user || c.im_user === ui.user);
}

function channelLabel(channel) {
  return channel.im_user ? `@ ${userName(state.bot_user_id)}` : `# ${channel.name}`;
}

function renderChannel() {
  const channels = visibleChannels();
  const channel = channels.find((c) => c.id === ui.channel) || channels[0];
  ui.channel = channel.id;
  $("channel-name").textContent = channelLabel(channel).replace(" ", "");
  $("channel-purpose").textContent = channel.im_user ? "Direct messages with the app: no @mention needed" : channel.purpose;
  const items = channel.messages.map((m) => ({ ts: m.ts, html: messageHtml(m, channel.id) }));
  for (const m of visibleEphemeral(channel.id, null)) {
    items.push({ ts: m.ts, html: messageHtml({ ...m, is_bot: true, user: state.bot_user_id, reactions: [] }, channel.id, { ephemeral: true }) });
  }
  items.sort((a, b) => Number(a.ts) - Number(b.ts));
  const html = items.map((i) => i.html).join("") || '<li class="empty message">No messages yet.</li>';
  keepScrolled($("messages"), html);
}

function renderThread() {
  const view = $("thread-view");
  if (!ui.thread || ui.view !== "channel") { view.hidden = true; return; }
  const channel = state.channels.find((c) => c.id === ui.thread.channel);
  const root = channel && channel.messages.find((m) => m.ts === ui.thread.ts);
  if (!root) { view.hidden = true; return; }
  view.hidden = false;
  const items = [root, ...root.replies].map((m) => ({ ts: m.ts, html: messageHtml(m, channel.id, { inThread: true }) }));
  for (const m of visibleEphemeral(channel.id, root.ts)) {
    items.push({ ts: m.ts, html: messageHtml({ ...m, is_bot: true, user: state.bot_user_id, reactions: [] }, channel.id, { inThread: true, ephemeral: true }) });
  }
  items.sort((a, b) => Number(a.ts) - Number(b.ts));
  keepScrolled($("thread-messages"), items.map((i) => i.html).join(""));
}

// --- the app's side panel (Slack's Agents & AI Apps) --------------------------------------------

function assistantThread() {
  return ui.assistant && state.assistant_threads.find((t) => t.channel === ui.assistant.channel && t.ts === ui.assistant.ts);
}

function latestAssistantThread() {
  const mine = state.assistant_threads.filter((t) => t.user === ui.user);
  return mine.length ? mine[mine.length - 1] : null;
}

function renderAssistant() {
  const view = $("assistant-view");
  const thread = ui.view === "channel" ? assistantThread() : null;
  $("open-assistant").classList.toggle("active", Boolean(thread));
  if (!thread) { view.hidden = true; return; }
  view.hidden = false;
  const channel = state.channels.find((c) => c.id === thread.channel);
  const root = channel && channel.messages.find((m) => m.ts === thread.ts);
  const replies = root ? root.replies : [];
  $("assistant-title").textContent = thread.title || "New chat";
  const prompts = thread.prompts && replies.length === 0 ? thread.prompts : null;
  const promptsHtml = prompts
    ? (prompts.title ? `<p>${escapeHtml(prompts.title)}</p>` : "") + prompts.prompts.map((p) =>
      `<button type="button" class="assistant-prompt" data-message="${escapeHtml(p.message)}">`
      + `<strong>${escapeHtml(p.title)}</strong><span>${escapeHtml(p.message)}</span></button>`).join("")
    : "";
  if ($("assistant-prompts").innerHTML !== promptsHtml) $("assistant-prompts").innerHTML = promptsHtml;
  const items = replies.map((m) => ({ ts: m.ts, html: messageHtml(m, thread.channel, { inThread: true }) }));
  for (const m of visibleEphemeral(thread.channel, thread.ts)) {
    items.push({ ts: m.ts, html: messageHtml({ ...m, is_bot: true, user: state.bot_user_id, reactions: [] }, thread.channel, { inThread: true, ephemeral: true }) });
  }
  items.sort((a, b) => Number(a.ts) - Number(b.ts));
  keepScrolled($("assistant-body"), items.map((i) => i.html).join(""), $("assistant-messages"));
  $("assistant-status").textContent = thread.status ? `${userName(state.bot_user_id)} ${thread.status}` : "";
}

function rememberAssistant() {
  localStorage.setItem(`sandbox.assistant.${ui.user}`, JSON.stringify(ui.assistant));
}

async function openAssistant({ fresh = false } = {}) {
  ui.thread = null;
  const latest = fresh ? null : latestAssistantThread();
  if (latest) {
    ui.assistant = { channel: latest.channel, ts: latest.ts };
  } else {
    const context = state.channels.find((c) => c.id === ui.channel && !c.im_user);
    const opened = await api("/api/assistant/open", { user: ui.user, context_channel: context ? context.id : null });
    if (!opened.ok) return;
    ui.assistant = { channel: opened.channel, ts: opened.ts };
  }
  rememberAssistant();
  render();
  $("assistant-input").focus();
}

async function tellAssistantWhereIAm() {
  const channel = state.channels.find((c) => c.id === ui.channel && !c.im_user);
  if (ui.assistant && channel) {
    await api("/api/assistant/context", { user: ui.user, channel: ui.assistant.channel, ts: ui.assistant.ts, context_channel: channel.id });
  }
}

// --- the rest of the page -----------------------------------------------------------------

function renderSidebar() {
  $("team").textContent = state.team;
  const status = $("status");
  status.textContent = state.status;
  status.className = state.ready ? "ready" : "starting";
  const people = state.users.filter((u) => !u.is_bot);
  const options = people.map((u) => `<option value="${u.id}">${escapeHtml(u.real_name)}${u.role ? ` (${u.role})` : ""}</option>`).join("");
  const select = $("person");
  if (select.dataset.options !== options) { select.innerHTML = options; select.dataset.options = options; }
  select.value = ui.user;
  $("channels").innerHTML = visibleChannels().map((c) => {
    const active = ui.view === "channel" && c.id === ui.channel ? " active" : "";
    return `<li><a href="#" class="channel-link${active}" data-channel="${c.id}">${escapeHtml(channelLabel(c))}</a></li>`;
  }).join("");
  $("mailbox-link").classList.toggle("active", ui.view === "mail");
  $("outbox-count").textContent = state.mail.outbox.length ? `(${state.mail.outbox.length})` : "";
}

function mailHtml(mail) {
  return `<li class="mail"><div class="subject">${escapeHtml(mail.subject || "(no subject)")}</div>`
    + `<div class="meta">From ${escapeHtml(mail.sender)} to ${escapeHtml(mail.to)} · ${clock(mail.sent_at)} · ${escapeHtml(mail.status)}</div>`
    + `<pre>${escapeHtml(mail.body)}</pre></li>`;
}

function renderMail() {
  const to = $("mail-to");
  if (!to.value) to.value = state.mail.agent_inbox;
  const outbox = [...state.mail.outbox].reverse().map(mailHtml).join("");
  const inbound = [...state.mail.inbound].reverse().map(mailHtml).join("");
  const outboxList = $("outbox");
  const inboundList = $("inbound");
  const outboxHtml = outbox || '<li class="empty">Nothing sent yet: emails the agent sends after approval land here.</li>';
  const inboundHtml = inbound || '<li class="empty">Nothing yet.</li>';
  if (outboxList.innerHTML !== outboxHtml) outboxList.innerHTML = outboxHtml;
  if (inboundList.innerHTML !== inboundHtml) inboundList.innerHTML = inboundHtml;
}

function modalInput(block) {
  const element = block.element || {};
  const id = `${block.block_id}::${element.action_id}`;
  const label = escapeHtml(block.label ? block.label.text : "");
  if (element.type === "static_select") {
    const options = (element.options || []).map((o) => `<option value="${escapeHtml(o.value)}">${escapeHtml(o.text.text)}</option>`).join("");
    return `<label>${label}<select data-input="${escapeHtml(id)}">${options}</select></label>`;
  }
  const value = escapeHtml(element.initial_value || "");
  return element.multiline
    ? `<label>${label}<textarea rows="5" data-input="${escapeHtml(id)}">${value}</textarea></label>`
    : `<label>${label}<input data-input="${escapeHtml(id)}" value="${value}"></label>`;
}

function renderModal() {
  const view = state.modals[ui.user];
  const layer = $("modal-layer");
  if (!view) { layer.hidden = true; ui.modalId = null; return; }
  const key = `${view.id}:${view.hash}`;
  if (ui.modalId === key && !layer.hidden) return; // do not wipe what someone is typing
  ui.modalId = key;
  const body = view.blocks.map((b) => (b.type === "input" ? modalInput(b) : blocksHtml([b], ""))).join("");
  $("modal").innerHTML = `<h1>${escapeHtml(view.title ? view.title.text : "")}</h1><div class="modal-body">${body}</div>`
    + `<div class="modal-buttons"><button type="button" class="secondary" id="modal-close">${escapeHtml(view.close ? view.close.text : "Cancel")}</button>`
    + (view.submit ? `<button type="submit" id="modal-submit">${escapeHtml(view.submit.text)}</button>` : "") + "</div>";
  $("modal").dataset.viewId = view.id;
  layer.hidden = false;
}

function render() {
  if (!state) return;
  renderSidebar();
  $("channel-view").hidden = ui.view !== "channel";
  $("mail-view").hidden = ui.view !== "mail";
  if (ui.view === "channel") renderChannel();
  renderThread();
  renderAssistant();
  renderMail();
  renderModal();
}

// --- what a person does ---------------------------------------------------------------------

async function send(text, threadTs) {
  const typed = text.trim();
  if (!typed) return;
  if (typed.startsWith("/")) {
    await api("/api/commands", { user: ui.user, channel: ui.channel, text: typed });
  } else {
    await api("/api/messages", { user: ui.user, channel: threadTs ? ui.thread.channel : ui.channel, text: typed, thread_ts: threadTs || null });
  }
}

function submitOnEnter(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
}

function wire() {
  $("person").addEventListener("change", (event) => {
    ui.user = event.target.value;
    localStorage.setItem("sandbox.user", ui.user);
    ui.modalId = null;
    ui.assistant = JSON.parse(localStorage.getItem(`sandbox.assistant.${ui.user}`) || "null");
    render();
  });
  document.addEventListener("click", async (event) => {
    const target = event.target.closest("a, button");
    if (!target) return;
    const message = target.closest(".message");
    // A Slack permalink (a card's "conversation", `/agent approvals`' "open") opens that
    // message's thread here, as Slack would, instead of a slack.com page.
    const permalink = target.tagName === "A" && (target.getAttribute("href") || "").match(/\/archives\/([CGD][A-Z0-9]+)\/p(\d{7,})(?:\?thread_ts=([\d.]+))?/);
    if (permalink && state.channels.some((c) => c.id === permalink[1])) {
      event.preventDefault();
      const ts = `${permalink[2].slice(0, -6)}.${permalink[2].slice(-6)}`;
      ui.view = "channel";
      ui.channel = permalink[1];
      localStorage.setItem("sandbox.channel", ui.channel);
      ui.thread = { channel: permalink[1], ts: permalink[3] || ts };
      ui.assistant = null;
      render();
      return;
    }
    if (target.classList.contains("channel-link")) {
      event.preventDefault();
      ui.view = "channel";
      ui.channel = target.dataset.channel;
      localStorage.setItem("sandbox.channel", ui.channel);
      if (ui.thread && ui.thread.channel !== ui.channel) ui.thread = null;
      render();
      await tellAssistantWhereIAm();
    } else if (target.id === "mailbox-link") {
      event.preventDefault();
      ui.view = "mail";
      render();
    } else if (target.id === "open-assistant") {
      if (ui.assistant) { ui.assistant = null; rememberAssistant(); render(); } else await openAssistant();
    } else if (target.id === "assistant-new") {
      await openAssistant({ fresh: true });
    } else if (target.id === "close-assistant") {
      ui.assistant = null;
      rememberAssistant();
      render();
    } else if (target.classList.contains("assistant-prompt") && ui.assistant) {
      await api("/api/messages", { user: ui.user, channel: ui.assistant.channel, text: target.dataset.message, thread_ts: ui.assistant.ts });
    } else if (target.id === "close-thread") {
      ui.thread = null;
      render();
    } else if (target.id === "modal-close") {
      await api(`/api/views/${$("modal").dataset.viewId}/close`, { user: ui.user });
    } else if (target.classList.contains("open-thread") && message) {
      ui.thread = { channel: message.dataset.channel, ts: message.dataset.ts };
      ui.assistant = null;
      rememberAssistant();
      render();
      $("thread-input").focus();
    } else if ((target.classList.contains("quick-react") || target.classList.contains("reaction")) && message) {
      const name = target.dataset.name;
      const root = state.channels.find((c) => c.id === message.dataset.channel);
      const all = root ? root.messages.flatMap((m) => [m, ...m.replies]) : [];
      const shown = all.find((m) => m.ts === message.dataset.ts);
      const mine = shown && shown.reactions.some((r) => r.name === name && r.users.includes(ui.user));
      await api("/api/reactions", { user: ui.user, channel: message.dataset.channel, ts: message.dataset.ts, name, add: !mine });
    } else if (target.classList.contains("block-button") && message) {
      await api("/api/actions", {
        user: ui.user, channel: message.dataset.channel, ts: message.dataset.ts,
        action_id: target.dataset.actionId, block_id: target.dataset.blockId || null, value: target.dataset.value || null,
      });
    }
  });
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("message-input");
    const text = input.value;
    input.value = "";
    await send(text, null);
  });
  $("thread-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("thread-input");
    const text = input.value;
    input.value = "";
    if (ui.thread) await send(text, ui.thread.ts);
  });
  $("assistant-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("assistant-input");
    const text = input.value.trim();
    input.value = "";
    if (ui.assistant && text) {
      await api("/api/messages", { user: ui.user, channel: ui.assistant.channel, text, thread_ts: ui.assistant.ts });
    }
  });
  submitOnEnter($("assistant-input"), $("assistant-composer"));
  submitOnEnter($("message-input"), $("composer"));
  submitOnEnter($("thread-input"), $("thread-composer"));
  $("modal").addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = {};
    for (const input of $("modal").querySelectorAll("[data-input]")) {
      const [blockId, actionId] = input.dataset.input.split("::");
      values[blockId] = { ...(values[blockId] || {}), [actionId]: input.value };
    }
    await api(`/api/views/${$("modal").dataset.viewId}/submit`, { user: ui.user, values });
  });
  $("mail-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await api("/api/mail", {
      from: $("mail-from").value, to: $("mail-to").value, subject: $("mail-subject").value, body: $("mail-body").value,
    });
    $("mail-result").textContent = result.status ? `The agent's SMTP listener answered: ${result.status}` : "";
  });
}

ui.assistant = JSON.parse(localStorage.getItem(`sandbox.assistant.${ui.user}`) || "null");
wire();
loadEmoji().then(connect);
