/*
 * Binjiang City Services web chat widget (滨江市政务服务 在线咨询).
 *
 * Embed with one tag; the gateway origin is taken from this script's own src, so a city site on another
 * origin can embed it:
 *   <script src="https://gateway.example/webchat/widget.js" defer
 *           data-title-zh="滨江市政务服务" data-title-en="Binjiang City Services" data-open="true"></script>
 *
 * Plain JavaScript, no build step, no dependencies. Talks the web chat wire protocol over
 * ws(s)://<origin>/channels/webchat/ws: the widget says hello with the session the server issued it before
 * (never in the URL), the server answers with that session or a new one, then history, message echo by
 * client_id, typing on/off, error. Message text is only ever inserted as text nodes (never innerHTML): it is untrusted.
 */
(function () {
  'use strict';

  if (window.BinjiangChat) return; // embedded twice: keep the first widget

  // document.currentScript is only set while the script first runs, so capture it now.
  var script = document.currentScript || findOwnScript();
  var scriptSrc = (script && script.src) || (location.origin + '/webchat/widget.js');
  var gatewayBase = new URL(scriptSrc, location.href);
  var dataset = (script && script.dataset) || {};

  var SESSION_KEY = 'bjchat.session';
  var LANG_KEY = 'bjchat.lang';
  var OPEN_KEY = 'bjchat.open';
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var TYPING_TIMEOUT_MS = 30000; // a lost "typing off" must not leave the dots on forever
  var HISTORY_WAIT_MS = 3000; // flush the outbox even if a server never sends history
  var MAX_TEXT = 2000;

  var STRINGS = {
    zh: {
      title: dataset.titleZh || '滨江市政务服务',
      subtitle: '在线咨询',
      launcher: '在线咨询',
      openChat: '打开在线咨询',
      closeChat: '关闭在线咨询',
      close: '关闭',
      toggle: 'EN',
      toggleLabel: 'Switch to English',
      inputLabel: '输入您的问题',
      placeholder: '请输入您的问题…',
      hint: 'Enter 发送，Shift+Enter 换行',
      send: '发送',
      log: '对话记录',
      quick: '快捷回复',
      connecting: '正在连接…',
      reconnecting: '连接中断，正在重新连接…',
      queued: '网络中断，消息将在恢复连接后自动发送',
      typing: '正在输入…',
      pending: '发送中',
      delivered: '已送达',
      failed: '未发送',
      you: '我',
      bot: '智能助手',
      agent: '人工客服',
      system: '系统消息',
      says: '：',
      image: '图片',
      welcome: '您好！我是滨江市政务服务智能助手，可以解答办事问题、受理投诉和报修、查询工单，也可以为您转接人工客服。',
      unread: function (n) { return n + ' 条新消息'; },
      errors: {
        generic: '抱歉，这条消息没有发送成功，请稍后再试。',
        too_long: '消息太长了，请精简后再发送。',
        empty: '请输入内容后再发送。',
        rate_limited: '您发送得有点快，请稍等片刻再试。',
        unsupported: '抱歉，暂不支持这种消息。',
        invalid: '抱歉，这条消息无法识别。'
      }
    },
    en: {
      title: dataset.titleEn || 'Binjiang City Services',
      subtitle: 'Online help',
      launcher: 'Chat with us',
      openChat: 'Open the chat',
      closeChat: 'Close the chat',
      close: 'Close',
      toggle: '中文',
      toggleLabel: '切换到中文',
      inputLabel: 'Type your question',
      placeholder: 'Type your question…',
      hint: 'Enter to send, Shift+Enter for a new line',
      send: 'Send',
      log: 'Conversation',
      quick: 'Quick replies',
      connecting: 'Connecting…',
      reconnecting: 'Connection lost, reconnecting…',
      queued: 'You are offline; your messages will be sent when the connection is back',
      typing: 'Typing…',
      pending: 'Sending',
      delivered: 'Delivered',
      failed: 'Not sent',
      you: 'You',
      bot: 'Assistant',
      agent: 'Agent',
      system: 'Notice',
      says: ': ',
      image: 'Image',
      welcome: 'Hello! I am the Binjiang City Services assistant. Ask me how to get things done, report a problem ' +
        'or make a complaint, check a work order, or ask for a person.',
      unread: function (n) { return n + (n === 1 ? ' new message' : ' new messages'); },
      errors: {
        generic: 'Sorry, that message could not be sent. Please try again in a moment.',
        too_long: 'That message is too long; please shorten it and send again.',
        empty: 'Please type something before sending.',
        rate_limited: 'You are sending messages a little fast; please wait a moment.',
        unsupported: 'Sorry, that kind of message is not supported yet.',
        invalid: 'Sorry, that message could not be understood.'
      }
    }
  };

  // ---------------------------------------------------------------- small helpers

  function findOwnScript() {
    var tags = document.getElementsByTagName('script');
    for (var i = tags.length - 1; i >= 0; i--) {
      if (/\/webchat\/widget\.js(\?|#|$)/.test(tags[i].src)) return tags[i];
    }
    return null;
  }

  // Storage can throw (privacy modes, blocked cookies): fall back to memory so the widget still works.
  function makeStore(kind) {
    var memory = {};
    var backend = null;
    try {
      backend = window[kind];
      var probe = '__bjchat_probe__';
      backend.setItem(probe, '1');
      backend.removeItem(probe);
    } catch (e) {
      backend = null;
    }
    return {
      get: function (key) {
        try { return backend ? backend.getItem(key) : (key in memory ? memory[key] : null); } catch (e) { return null; }
      },
      set: function (key, value) {
        try { if (backend) backend.setItem(key, value); else memory[key] = value; } catch (e) { memory[key] = value; }
      },
      remove: function (key) {
        try { if (backend) backend.removeItem(key); } catch (e) { /* ignore */ }
        delete memory[key];
      }
    };
  }

  var local = makeStore('localStorage');
  var session = makeStore('sessionStorage');

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === 'function') {
      try { return c.randomUUID(); } catch (e) { /* insecure context: fall through */ }
    }
    var bytes = new Array(16);
    if (c && typeof c.getRandomValues === 'function') {
      var buf = new Uint8Array(16);
      c.getRandomValues(buf);
      for (var i = 0; i < 16; i++) bytes[i] = buf[i];
    } else {
      for (var j = 0; j < 16; j++) bytes[j] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    var hex = bytes.map(function (b) { return (b + 0x100).toString(16).slice(1); }).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' +
      hex.slice(20);
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === 'className') node.className = value;
        else if (name === 'text') node.textContent = value;
        else node.setAttribute(name, value === true ? '' : String(value));
      });
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  var CJK = /[\u3400-\u9fff\uf900-\ufaff]/;

  function pickUiLanguage() {
    var saved = local.get(LANG_KEY);
    if (saved === 'zh' || saved === 'en') return saved;
    var langs = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language || ''];
    return /^zh/i.test(String(langs[0] || '')) ? 'zh' : 'en';
  }

  // Turns http(s) URLs in text into links; everything else stays a text node (newlines are kept by CSS).
  var URL_RE = /https?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]+/gi;

  function appendLinkified(parent, text) {
    var last = 0;
    var match;
    URL_RE.lastIndex = 0;
    while ((match = URL_RE.exec(text)) !== null) {
      var raw = match[0];
      // Trailing punctuation usually ends the sentence, not the URL; keep ")" only if the URL opened one.
      var trimmed = raw.replace(/[.,;:!?'"\]}>]+$/, '');
      while (/\)$/.test(trimmed) && (trimmed.split('(').length <= trimmed.split(')').length - 1)) {
        trimmed = trimmed.slice(0, -1).replace(/[.,;:!?'"\]}>]+$/, '');
      }
      var start = match.index;
      var end = start + trimmed.length;
      var href = safeUrl(trimmed, false);
      if (!href) continue;
      if (start > last) parent.appendChild(document.createTextNode(text.slice(last, start)));
      parent.appendChild(el('a', {
        href: href, target: '_blank', rel: 'noopener noreferrer nofollow', text: trimmed
      }));
      last = end;
      URL_RE.lastIndex = end;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // Only http(s) URLs survive (no javascript:, data: and friends); relative ones resolve against the gateway.
  function safeUrl(value, relativeToGateway) {
    try {
      var url = relativeToGateway ? new URL(value, gatewayBase) : new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function formatTime(iso) {
    var date = iso ? new Date(iso) : new Date();
    if (isNaN(date.getTime())) date = new Date();
    try {
      return date.toLocaleTimeString(state.lang === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
    } catch (e) {
      return ('0' + date.getHours()).slice(-2) + ':' + ('0' + date.getMinutes()).slice(-2);
    }
  }

  // ---------------------------------------------------------------- state

  var state = {
    lang: pickUiLanguage(),
    open: false,
    sessionId: null,
    socket: null,
    everConnected: false,
    historyReceived: false,
    attempts: 0,
    reconnectTimer: null,
    historyTimer: null,
    typingTimer: null,
    errorTimer: null,
    unread: 0,
    messages: [], // what is shown: server Msgs plus local pending ones ({local: true, status})
    sentThisSocket: {} // client_id -> true: the outbox is sent once per connection
  };

  // Per tab, not per session: what was typed is still sent if the server had to issue a new session.
  function outboxKey() { return 'bjchat.outbox'; }

  // The outbox lives in sessionStorage: it survives a reload of this tab (nothing typed is lost) without
  // another tab of the same session sending it too.
  function loadOutbox() {
    try {
      var items = JSON.parse(session.get(outboxKey()) || '[]');
      return Array.isArray(items) ? items : [];
    } catch (e) {
      return [];
    }
  }

  function saveOutbox(items) {
    if (items.length) session.set(outboxKey(), JSON.stringify(items));
    else session.remove(outboxKey());
  }

  // The session is the server's to issue (signed, unguessable); the widget only keeps and presents it.
  function storedSession() {
    var token = local.get(SESSION_KEY);
    return token && /^[A-Za-z0-9_.-]{8,128}$/.test(token) ? token : null;
  }

  function onSession(token) {
    if (typeof token !== 'string' || !token) return;
    state.sessionId = token;
    local.set(SESSION_KEY, token);
  }

  // ---------------------------------------------------------------- DOM

  var ui = {};

  function t(key) { return STRINGS[state.lang][key]; }

  function build() {
    ui.root = el('div', { className: 'bjchat-root', id: 'bjchat', hidden: true });

    ui.launcherLabel = el('span', { className: 'bjchat-launcher-label' });
    ui.badge = el('span', { className: 'bjchat-badge', hidden: true, 'aria-hidden': 'true' });
    ui.launcher = el('button', {
      type: 'button', className: 'bjchat-launcher', 'data-testid': 'chat-launcher',
      'aria-controls': 'bjchat-panel', 'aria-expanded': 'false'
    }, [iconChat(), ui.launcherLabel, ui.badge]);

    ui.title = el('h2', { className: 'bjchat-title', id: 'bjchat-title' });
    ui.subtitle = el('p', { className: 'bjchat-subtitle' });
    ui.langToggle = el('button', { type: 'button', className: 'bjchat-lang' });
    ui.closeBtn = el('button', { type: 'button', className: 'bjchat-close' }, [iconClose()]);
    var header = el('div', { className: 'bjchat-header' }, [
      el('div', { className: 'bjchat-heading' }, [ui.title, ui.subtitle]),
      ui.langToggle, ui.closeBtn
    ]);

    ui.status = el('div', {
      className: 'bjchat-status', 'data-testid': 'chat-status', 'data-state': 'idle', role: 'status',
      'aria-live': 'polite'
    });

    ui.welcome = el('p', { className: 'bjchat-welcome' });
    ui.log = el('ol', {
      className: 'bjchat-log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions',
      'aria-labelledby': 'bjchat-log-label'
    });
    ui.logLabel = el('span', { className: 'bjchat-sr', id: 'bjchat-log-label' });
    ui.quick = el('div', { className: 'bjchat-quick', role: 'group', hidden: true });
    ui.typingLabel = el('span', { className: 'bjchat-sr' });
    ui.typing = el('div', {
      className: 'bjchat-typing', 'data-testid': 'chat-typing', role: 'status', hidden: true
    }, [
      el('span', { className: 'bjchat-dot', 'aria-hidden': 'true' }),
      el('span', { className: 'bjchat-dot', 'aria-hidden': 'true' }),
      el('span', { className: 'bjchat-dot', 'aria-hidden': 'true' }),
      ui.typingLabel
    ]);
    ui.scroll = el('div', { className: 'bjchat-scroll' }, [ui.logLabel, ui.welcome, ui.log, ui.quick, ui.typing]);

    ui.error = el('div', { className: 'bjchat-error', role: 'alert', 'data-testid': 'chat-error', hidden: true });

    ui.inputLabel = el('label', { className: 'bjchat-sr', for: 'bjchat-input' });
    ui.input = el('textarea', {
      id: 'bjchat-input', className: 'bjchat-input', 'data-testid': 'chat-input', rows: '1',
      maxlength: String(MAX_TEXT), autocomplete: 'off', 'aria-describedby': 'bjchat-hint', enterkeyhint: 'send'
    });
    ui.hint = el('span', { className: 'bjchat-sr', id: 'bjchat-hint' });
    ui.sendBtn = el('button', { type: 'submit', className: 'bjchat-send', 'data-testid': 'chat-send' });
    ui.form = el('form', { className: 'bjchat-form', novalidate: true }, [ui.inputLabel, ui.input, ui.hint, ui.sendBtn]);

    ui.panel = el('section', {
      className: 'bjchat-panel', id: 'bjchat-panel', 'data-testid': 'chat-panel',
      role: 'region', 'aria-labelledby': 'bjchat-title', hidden: true
    }, [header, ui.status, ui.scroll, ui.error, ui.form]);

    ui.root.appendChild(ui.panel);
    ui.root.appendChild(ui.launcher);
    document.body.appendChild(ui.root);

    ui.launcher.addEventListener('click', function () { if (state.open) close(); else open(true); });
    ui.closeBtn.addEventListener('click', function () { close(); ui.launcher.focus(); });
    ui.langToggle.addEventListener('click', function () {
      state.lang = state.lang === 'zh' ? 'en' : 'zh';
      local.set(LANG_KEY, state.lang);
      applyLanguage();
    });
    ui.panel.addEventListener('keydown', function (event) {
      if (event.key === 'Escape' && !event.isComposing) { close(); ui.launcher.focus(); }
    });
    ui.form.addEventListener('submit', function (event) {
      event.preventDefault();
      submitInput();
    });
    ui.input.addEventListener('keydown', function (event) {
      // While an IME is composing (pinyin), Enter picks the candidate; it must not send.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submitInput();
      }
    });
    ui.input.addEventListener('input', autoGrow);

    loadStylesheet();
    applyLanguage();
  }

  // The stylesheet comes from the gateway too; the root stays hidden until it is there (no flash of
  // unstyled widget), and is shown anyway if it fails so the chat still works.
  function loadStylesheet() {
    var href = new URL('widget.css', gatewayBase).href;
    var existing = document.querySelector('link[data-bjchat-css]');
    if (existing) { ui.root.hidden = false; return; }
    var link = el('link', { rel: 'stylesheet', href: href, 'data-bjchat-css': 'true' });
    var reveal = function () { ui.root.hidden = false; };
    link.addEventListener('load', reveal);
    link.addEventListener('error', reveal);
    setTimeout(reveal, 3000);
    (document.head || document.documentElement).appendChild(link);
  }

  function svg(pathD) {
    var ns = 'http://www.w3.org/2000/svg';
    var icon = document.createElementNS(ns, 'svg');
    icon.setAttribute('viewBox', '0 0 24 24');
    icon.setAttribute('aria-hidden', 'true');
    icon.setAttribute('focusable', 'false');
    icon.setAttribute('class', 'bjchat-icon');
    var path = document.createElementNS(ns, 'path');
    path.setAttribute('d', pathD);
    icon.appendChild(path);
    return icon;
  }

  function iconChat() {
    return svg('M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 ' +
      '0 1 0 0-3 1.5 1.5 0 0 0 0 3zm5 0a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3zm5 0a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3z');
  }

  function iconClose() {
    return svg('M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z');
  }

  function applyLanguage() {
    ui.root.setAttribute('lang', state.lang === 'zh' ? 'zh-CN' : 'en');
    ui.title.textContent = t('title');
    ui.subtitle.textContent = t('subtitle');
    ui.launcherLabel.textContent = t('launcher');
    ui.launcher.setAttribute('aria-label', state.open ? t('closeChat') : t('openChat'));
    ui.langToggle.textContent = t('toggle');
    ui.langToggle.setAttribute('aria-label', t('toggleLabel'));
    ui.langToggle.setAttribute('lang', state.lang === 'zh' ? 'en' : 'zh-CN');
    ui.closeBtn.setAttribute('aria-label', t('close'));
    ui.closeBtn.setAttribute('title', t('close'));
    ui.logLabel.textContent = t('log');
    ui.quick.setAttribute('aria-label', t('quick'));
    ui.typingLabel.textContent = t('bot') + ' ' + t('typing');
    ui.inputLabel.textContent = t('inputLabel');
    ui.input.setAttribute('placeholder', t('placeholder'));
    ui.hint.textContent = t('hint');
    ui.sendBtn.textContent = t('send');
    ui.welcome.textContent = t('welcome');
    renderStatus();
    renderBadge();
    renderAll();
  }

  function autoGrow() {
    ui.input.style.height = 'auto';
    ui.input.style.height = Math.min(ui.input.scrollHeight, 120) + 'px';
  }

  function nearBottom() {
    return ui.scroll.scrollHeight - ui.scroll.scrollTop - ui.scroll.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.scroll.scrollTop = ui.scroll.scrollHeight;
  }

  // ---------------------------------------------------------------- rendering messages

  function renderMessage(msg) {
    var from = ['citizen', 'bot', 'agent', 'system'].indexOf(msg.from) >= 0 ? msg.from : 'system';
    var row = el('li', { className: 'bjchat-row bjchat-from-' + from });
    var speaker = from === 'citizen' ? t('you') : t(from);
    // The speaker is for screen readers; it sits outside the message element so its text is only the message.
    row.appendChild(el('span', { className: 'bjchat-sr', text: speaker + t('says') }));
    if (from === 'agent') row.appendChild(el('span', { className: 'bjchat-speaker', 'aria-hidden': 'true', text: speaker }));

    var bubble = el('div', {
      className: 'bjchat-msg', 'data-testid': 'chat-message', 'data-from': from,
      'data-id': msg.id || null, 'data-client-id': msg.client_id || null,
      'data-status': from === 'citizen' ? (msg.status || 'delivered') : null
    });
    if (msg.text) {
      var textNode = el('div', { className: 'bjchat-text' });
      if (msg.text) textNode.setAttribute('lang', CJK.test(msg.text) ? 'zh' : 'en');
      appendLinkified(textNode, String(msg.text));
      bubble.appendChild(textNode);
    }
    var imageUrl = msg.image ? safeUrl(msg.image, true) : null;
    if (imageUrl) {
      bubble.appendChild(el('a', { href: imageUrl, target: '_blank', rel: 'noopener noreferrer', className: 'bjchat-image' }, [
        el('img', { src: imageUrl, alt: t('image'), loading: 'lazy', referrerpolicy: 'no-referrer' })
      ]));
    }
    row.appendChild(bubble);

    var meta = el('div', { className: 'bjchat-meta' }, [
      el('time', { datetime: msg.created_at || null, text: formatTime(msg.created_at) })
    ]);
    if (from === 'citizen') {
      meta.appendChild(el('span', { className: 'bjchat-state', text: t(msg.status || 'delivered') }));
    }
    row.appendChild(meta);
    msg.node = row;
    return row;
  }

  function renderAll() {
    if (!ui.log) return;
    var keepBottom = true; // a full render happens on history/language change: show the latest
    ui.log.setAttribute('aria-busy', 'true'); // do not read the whole history out again
    while (ui.log.firstChild) ui.log.removeChild(ui.log.firstChild);
    state.messages.forEach(function (msg) { ui.log.appendChild(renderMessage(msg)); });
    ui.log.removeAttribute('aria-busy');
    ui.welcome.hidden = state.messages.length > 0;
    renderQuickReplies();
    if (keepBottom) scrollToBottom();
  }

  function appendMessage(msg, forceScroll) {
    var stick = forceScroll || nearBottom();
    state.messages.push(msg);
    ui.log.appendChild(renderMessage(msg));
    ui.welcome.hidden = true;
    renderQuickReplies();
    if (stick) scrollToBottom();
  }

  function replaceMessageNode(msg) {
    var old = msg.node;
    var fresh = renderMessage(msg);
    if (old && old.parentNode === ui.log) ui.log.replaceChild(fresh, old);
  }

  // Quick replies belong to the last bot/agent message, and only while the citizen has not answered it.
  function currentButtons() {
    for (var i = state.messages.length - 1; i >= 0; i--) {
      var msg = state.messages[i];
      if (msg.from === 'citizen') return null;
      if (msg.from === 'bot' || msg.from === 'agent' || msg.from === 'system') {
        return (Array.isArray(msg.buttons) && msg.buttons.length) ? msg.buttons : null;
      }
    }
    return null;
  }

  function renderQuickReplies() {
    while (ui.quick.firstChild) ui.quick.removeChild(ui.quick.firstChild);
    var buttons = currentButtons();
    ui.quick.hidden = !buttons;
    if (!buttons) return;
    buttons.forEach(function (button) {
      if (!button || typeof button.title !== 'string') return;
      var node = el('button', {
        type: 'button', className: 'bjchat-quick-reply', 'data-testid': 'quick-reply',
        'data-payload': button.payload == null ? '' : String(button.payload), text: button.title
      });
      node.addEventListener('click', function () {
        sendCitizenMessage(button.title, button.payload == null ? button.title : String(button.payload));
        ui.input.focus();
      });
      ui.quick.appendChild(node);
    });
  }

  // ---------------------------------------------------------------- status, typing, errors, badge

  function renderStatus() {
    var st = ui.status.getAttribute('data-state');
    var text = '';
    if (st === 'connecting') text = t('connecting');
    else if (st === 'reconnecting') text = loadOutbox().length ? t('queued') : t('reconnecting');
    ui.status.textContent = text;
    ui.status.hidden = !text;
  }

  function setStatus(value) {
    ui.status.setAttribute('data-state', value);
    renderStatus();
  }

  function setTyping(on) {
    clearTimeout(state.typingTimer);
    ui.typing.hidden = !on;
    if (on) {
      state.typingTimer = setTimeout(function () { ui.typing.hidden = true; }, TYPING_TIMEOUT_MS);
      if (nearBottom()) scrollToBottom();
    }
  }

  // The server's reason may be a short code or an English sentence; either way the citizen gets a polite line
  // in the UI language (the raw reason stays in data-reason for support).
  function errorKind(reason) {
    if (STRINGS.en.errors[reason]) return reason;
    if (/too many|rate|slow down|wait/i.test(reason)) return 'rate_limited';
    if (/too long|at most|max/i.test(reason)) return 'too_long';
    if (/empty|at least 1|required/i.test(reason)) return 'empty';
    return 'generic';
  }

  function showError(reason) {
    var text = STRINGS[state.lang].errors[errorKind(reason)];
    ui.error.textContent = text;
    ui.error.setAttribute('data-reason', reason || '');
    ui.error.hidden = false;
    clearTimeout(state.errorTimer);
    state.errorTimer = setTimeout(function () { ui.error.hidden = true; }, 8000);
  }

  function renderBadge() {
    ui.badge.hidden = state.unread === 0;
    ui.badge.textContent = state.unread > 9 ? '9+' : String(state.unread);
    var label = state.open ? t('closeChat') : t('openChat');
    if (state.unread && !state.open) label += ' (' + STRINGS[state.lang].unread(state.unread) + ')';
    ui.launcher.setAttribute('aria-label', label);
  }

  // ---------------------------------------------------------------- sending

  function submitInput() {
    var text = ui.input.value.replace(/^\s+|\s+$/g, '');
    if (!text) { ui.input.focus(); return; }
    ui.input.value = '';
    autoGrow();
    sendCitizenMessage(text, null);
  }

  function sendCitizenMessage(text, payload) {
    text = String(text).slice(0, MAX_TEXT);
    var item = { type: 'message', text: text, client_id: uuid(), created_at: new Date().toISOString() };
    if (payload !== null && payload !== undefined) item.payload = payload;
    var outbox = loadOutbox();
    outbox.push(item);
    saveOutbox(outbox);
    appendMessage({
      id: null, from: 'citizen', text: text, buttons: null, image: null, client_id: item.client_id,
      created_at: item.created_at, status: 'pending', local: true
    }, true);
    if (!state.socket) connect();
    flushOutbox();
    renderStatus();
    return item.client_id;
  }

  // Sends what the server has not acknowledged yet, once per connection. Items leave the outbox only when
  // the server echoes their client_id (or lists it in history), so a drop mid-send resends the same id.
  function flushOutbox() {
    var sock = state.socket;
    if (!sock || sock.readyState !== 1 || !state.historyReceived) return;
    loadOutbox().forEach(function (item) {
      if (state.sentThisSocket[item.client_id]) return;
      var frame = { type: 'message', text: item.text, client_id: item.client_id };
      if (item.payload !== undefined) frame.payload = item.payload;
      try {
        sock.send(JSON.stringify(frame));
        state.sentThisSocket[item.client_id] = true;
      } catch (e) { /* the close handler reconnects and we try again */ }
    });
  }

  function removeFromOutbox(clientId) {
    var outbox = loadOutbox();
    var kept = outbox.filter(function (item) { return item.client_id !== clientId; });
    if (kept.length !== outbox.length) saveOutbox(kept);
  }

  // ---------------------------------------------------------------- receiving

  function normalise(raw) {
    if (!raw || typeof raw !== 'object') return null;
    return {
      id: raw.id == null ? null : String(raw.id),
      from: raw.from,
      text: typeof raw.text === 'string' ? raw.text : null,
      buttons: Array.isArray(raw.buttons) ? raw.buttons : null,
      image: typeof raw.image === 'string' ? raw.image : null,
      client_id: raw.client_id == null ? null : String(raw.client_id),
      created_at: typeof raw.created_at === 'string' ? raw.created_at : null,
      status: raw.from === 'citizen' ? 'delivered' : undefined
    };
  }

  function onHistory(list) {
    var messages = (Array.isArray(list) ? list : []).map(normalise).filter(Boolean);
    var seenClientIds = {};
    messages.forEach(function (msg) { if (msg.client_id) seenClientIds[msg.client_id] = true; });
    // Anything the server already has is done; the rest stays pending and is shown after the history.
    var outbox = loadOutbox().filter(function (item) { return !seenClientIds[item.client_id]; });
    saveOutbox(outbox);
    outbox.forEach(function (item) {
      messages.push({
        id: null, from: 'citizen', text: item.text, buttons: null, image: null, client_id: item.client_id,
        created_at: item.created_at, status: 'pending', local: true
      });
    });
    state.messages = messages;
    renderAll();
    state.historyReceived = true;
    state.attempts = 0; // a connection that got this far is healthy
    flushOutbox();
    renderStatus();
  }

  function onMessage(raw) {
    var msg = normalise(raw);
    if (!msg) return;
    if (msg.id) {
      for (var i = 0; i < state.messages.length; i++) {
        if (state.messages[i].id === msg.id) return; // already shown (overlap after a reconnect)
      }
    }
    if (msg.from === 'citizen' && msg.client_id) {
      removeFromOutbox(msg.client_id);
      for (var j = 0; j < state.messages.length; j++) {
        var mine = state.messages[j];
        if (mine.from === 'citizen' && mine.client_id === msg.client_id) {
          msg.node = mine.node;
          state.messages[j] = msg;
          replaceMessageNode(msg);
          renderQuickReplies();
          renderStatus();
          return;
        }
      }
    }
    if (msg.from === 'bot' || msg.from === 'agent') {
      setTyping(false);
      if (!state.open) { state.unread += 1; renderBadge(); }
    }
    appendMessage(msg, false);
  }

  function onError(frame) {
    var clientId = frame.client_id == null ? null : String(frame.client_id);
    if (clientId) {
      // A refused message will never be echoed: stop resending it and mark it.
      removeFromOutbox(clientId);
      state.messages.forEach(function (msg) {
        if (msg.from === 'citizen' && msg.client_id === clientId && msg.status === 'pending') {
          msg.status = 'failed';
          replaceMessageNode(msg);
        }
      });
    }
    setTyping(false);
    showError(typeof frame.reason === 'string' ? frame.reason : '');
  }

  function onFrame(event) {
    var frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (!frame || typeof frame !== 'object') return;
    if (frame.type === 'session') onSession(frame.session);
    else if (frame.type === 'history') onHistory(frame.messages);
    else if (frame.type === 'message') onMessage(frame.message);
    else if (frame.type === 'typing') setTyping(!!frame.on);
    else if (frame.type === 'error') onError(frame);
  }

  // ---------------------------------------------------------------- connection

  function socketUrl() {
    var scheme = gatewayBase.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + gatewayBase.host + '/channels/webchat/ws';
  }

  function connect() {
    if (state.socket && (state.socket.readyState === 0 || state.socket.readyState === 1)) return;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    setStatus(state.everConnected ? 'reconnecting' : 'connecting');
    var sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.socket = sock;
    state.historyReceived = false;
    state.sentThisSocket = {};
    sock.onopen = function () {
      if (state.socket !== sock) return;
      try {
        sock.send(JSON.stringify({ type: 'hello', session: state.sessionId || storedSession() }));
      } catch (e) { /* the close handler reconnects */ }
      state.everConnected = true;
      setStatus('open');
      clearTimeout(state.historyTimer);
      state.historyTimer = setTimeout(function () {
        if (state.socket === sock && !state.historyReceived) { state.historyReceived = true; flushOutbox(); }
      }, HISTORY_WAIT_MS);
    };
    sock.onmessage = function (event) { if (state.socket === sock) onFrame(event); };
    sock.onerror = function () { /* onclose follows and reconnects */ };
    sock.onclose = function () {
      if (state.socket !== sock) return;
      state.socket = null;
      state.historyReceived = false;
      clearTimeout(state.historyTimer);
      setTyping(false);
      scheduleReconnect();
    };
  }

  // Exponential backoff 0.5 s -> 10 s with ±20 % jitter, so a restarted gateway is not hit by every
  // browser in the same instant.
  function scheduleReconnect() {
    if (state.reconnectTimer) return;
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, state.attempts));
    var delay = Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4));
    state.attempts += 1;
    setStatus(state.everConnected ? 'reconnecting' : 'connecting');
    state.reconnectTimer = setTimeout(function () {
      state.reconnectTimer = null;
      connect();
    }, delay);
  }

  // Back online or back in view: do not wait out the backoff.
  function reconnectNow() {
    if (!state.everConnected || state.socket) return;
    state.attempts = 0;
    connect();
  }

  // ---------------------------------------------------------------- open / close

  function open(focusInput) {
    if (!ui.root) return;
    state.open = true;
    session.set(OPEN_KEY, '1');
    ui.panel.hidden = false;
    ui.root.classList.add('bjchat-is-open');
    ui.launcher.setAttribute('aria-expanded', 'true');
    state.unread = 0;
    renderBadge();
    if (!state.socket && !state.reconnectTimer) connect();
    scrollToBottom();
    if (focusInput !== false) ui.input.focus();
  }

  function close() {
    if (!ui.root) return;
    state.open = false;
    session.set(OPEN_KEY, '0');
    ui.panel.hidden = true;
    ui.root.classList.remove('bjchat-is-open');
    ui.launcher.setAttribute('aria-expanded', 'false');
    renderBadge();
  }

  function init() {
    build();
    window.addEventListener('online', reconnectNow);
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') reconnectNow();
    });
    var wasOpen = session.get(OPEN_KEY);
    var autoOpen = dataset.open === 'true' || dataset.open === '';
    // A returning citizen (known session) connects at once so agent replies arrive even with the panel shut;
    // a first-time visitor opens no socket until they open the chat.
    var known = !!storedSession();
    if ((autoOpen && wasOpen !== '0') || wasOpen === '1') open(false);
    else if (known) connect();
  }

  window.BinjiangChat = {
    open: function () { open(true); },
    close: close,
    send: function (text) {
      var value = String(text == null ? '' : text).replace(/^\s+|\s+$/g, '');
      if (!value || !ui.root) return null;
      if (!state.open) open(false);
      return sendCitizenMessage(value, null);
    }
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
