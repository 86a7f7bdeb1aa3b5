// The agent inbox: the list, one conversation, the actions, live over the inbox socket. Plain JS, no build step.
(() => {
  'use strict';
  const body = document.body;
  const csrf = document.querySelector('meta[name=csrf-token]').content;
  const me = Number(body.dataset.agentId);
  const lang = body.dataset.language === 'en' ? 'en' : 'zh';
  const zone = body.dataset.timezone;
  const T = {
    zh: {title: '坐席工作台', online: '在线', logout: '退出', f_active: '待接入+处理中', s_pending: '待接入',
      s_open: '处理中', s_resolved: '已解决', s_bot: '机器人', f_everyone: '全部坐席', f_mine: '我的',
      f_unassigned: '未分配', claim: '接入', resolve: '解决', hand_back: '交还机器人', send: '发送',
      add_note: '添加备注', transfer: '转接…', waiting: '等待', unread: '未读', citizen: '市民', bot: '机器人',
      agent: '坐席', system: '系统', note: '内部备注', identities: '渠道身份', earlier: '历史会话',
      work_orders: '工单', canned: '快捷回复…', queues: '队列', longest: '最长等待', first_response: '平均首次响应',
      csat: '今日满意度', open_per_agent: '各坐席处理中', none: '无', status_change: '状态', csat_event: '满意度评分',
      assign: '分配', to_dept: '转到部门：', empty: '没有会话', attachments: '附件', recording: '录音', file_work_order: '登记工单',
      wo_report: '报修', wo_complaint: '投诉', wo_consultation: '咨询', wo_suggestion: '建议', file: '提交',
      p_channel: '渠道', p_department: '部门', p_description: '问题描述', p_location: '地点', p_note: '内部备注（市民看不到）', attach: '发送文件',
      dead_letter: '机器人多次处理失败，请人工处理', unverified: '发件人未验证'},
    en: {title: 'Agent inbox', online: 'Online', logout: 'Log out', f_active: 'Waiting + open', s_pending: 'Waiting',
      s_open: 'Open', s_resolved: 'Resolved', s_bot: 'Bot', f_everyone: 'Everyone', f_mine: 'Mine',
      f_unassigned: 'Unassigned', claim: 'Claim', resolve: 'Resolve', hand_back: 'Hand back to bot', send: 'Send',
      add_note: 'Add note', transfer: 'Transfer…', waiting: 'waiting', unread: 'unread', citizen: 'Citizen',
      bot: 'Bot', agent: 'Agent', system: 'System', note: 'Private note', identities: 'Identities',
      earlier: 'Earlier conversations', work_orders: 'Work orders', canned: 'Canned reply…', queues: 'Queues',
      longest: 'Longest wait', first_response: 'Avg first response', csat: 'CSAT today',
      open_per_agent: 'Open per agent', none: 'none', status_change: 'Status', csat_event: 'Satisfaction score',
      assign: 'Assigned', to_dept: 'To department: ', empty: 'No conversations', attachments: 'Attachments', recording: 'Recording',
      file_work_order: 'File a work order', wo_report: 'Report', wo_complaint: 'Complaint',
      wo_consultation: 'Consultation', wo_suggestion: 'Suggestion', file: 'File', p_channel: 'channel',
      p_department: 'department', p_description: 'What is wrong', p_location: 'Where',
      p_note: 'Private note (the citizen never sees it)', attach: 'Send file',
      dead_letter: 'The bot failed on this message: please handle it', unverified: 'sender not verified'},
  }[lang];
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'dataset') Object.assign(node.dataset, v); else if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  const time = (iso) => iso ? new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en-GB', {
    timeZone: zone, month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).format(new Date(iso)) : '';
  const duration = (s) => s === null || s === undefined ? '–' : s < 60 ? `${Math.round(s)}s`
    : s < 3600 ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s` : `${Math.floor(s / 3600)}h${Math.floor(s % 3600 / 60)}m`;
  document.querySelectorAll('[data-i18n]').forEach((n) => { n.textContent = T[n.dataset.i18n] || n.dataset.i18n; });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((n) => { n.placeholder = T[n.dataset.i18nPlaceholder] || ''; });

  async function api(path, options = {}) {
    const response = await fetch('/api/inbox' + path, {
      credentials: 'same-origin', ...options,
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf, ...(options.headers || {})},
    });
    if (response.status === 401) { window.location.href = '/inbox/login'; throw new Error('logged out'); }
    const data = response.status === 204 ? null : await response.json();
    if (!response.ok) { alert((data && data.detail) || response.statusText); throw new Error(String(response.status)); }
    return data;
  }
  const post = (path, payload) => api(path, {method: 'POST', body: JSON.stringify(payload || {})});
  // A file kept in the media folder is served to staff by the inbox API; a vendor URL is linked as it is.
  const mediaHref = (a) => a.ref ? '/api/inbox/' + a.ref : (a.url || '#');

  let current = null;  // the open conversation's id
  let canned = [];
  let agents = [];

  // ---- the list --------------------------------------------------------------------------------------------------
  async function loadList() {
    const q = new URLSearchParams({status: $('f-status').value});
    for (const [key, id] of [['assignee', 'f-assignee'], ['channel', 'f-channel'], ['department', 'f-department']]) {
      if ($(id).value.trim()) q.set(key, $(id).value.trim());
    }
    const data = await api('/conversations?' + q);
    const list = $('conversations');
    list.replaceChildren(...data.conversations.map((c) => el('li', {
      'data-testid': 'inbox-item', 'data-conversation-id': c.id, 'data-status': c.status,
      class: c.id === current ? 'selected' : null,
    },
      el('div', {class: 'row'}, el('strong', {}, c.contact_name || c.channel + ' · ' + c.id.slice(0, 6)),
        el('span', {class: 'status ' + c.status}, T['s_' + c.status] || c.status)),
      el('div', {class: 'row small'}, `${c.channel} · ${c.department || '–'} · ${c.agent_name || T.f_unassigned}`,
        c.unread ? el('span', {class: 'unread', 'data-testid': 'unread'}, String(c.unread)) : null),
      el('div', {class: 'preview'}, c.last_message ? c.last_message.text : ''),
      el('div', {class: 'row small'}, time(c.last_activity_at),
        c.waiting_seconds !== null ? el('span', {class: 'waiting'}, `${T.waiting} ${duration(c.waiting_seconds)}`) : null),
    )));
    if (!data.conversations.length) list.append(el('li', {class: 'empty'}, T.empty));
    list.querySelectorAll('[data-testid=inbox-item]').forEach((item) => {
      item.addEventListener('click', () => openConversation(item.dataset.conversationId));
    });
  }

  // ---- one conversation ------------------------------------------------------------------------------------------
  function renderItem(item) {
    if (item.kind === 'message') {
      const who = item.from === 'agent' && item.agent ? `${T.agent} ${item.agent}` : (T[item.from] || item.from);
      const node = el('li', {class: 'msg ' + item.from, 'data-testid': 'history-message', 'data-from': item.from},
        el('div', {class: 'meta'}, `${who} · ${time(item.created_at)}`,
          item.delivery_state === 'failed' ? el('span', {class: 'failed'}, ' ✖') : null,
          item.sender_verified === false ? el('span', {class: 'failed', 'data-testid': 'unverified'}, ` ⚠ ${T.unverified}`) : null),
        el('div', {class: 'text'}, item.text || ''),
        item.turn_state === 'failed' ? el('div', {class: 'failed', role: 'alert', 'data-testid': 'dead-letter'}, T.dead_letter) : null);
      if (item.image) node.append(el('img', {src: item.image, alt: '', class: 'image'}));
      if (item.buttons && item.buttons.length) {
        node.append(el('div', {class: 'buttons'}, ...item.buttons.map((b) => el('span', {class: 'button', title: b.payload}, b.title))));
      }
      if (item.attachments && item.attachments.length) {
        // A recording (a message left on the phone line, a voice note) plays in place; the rest are links.
        item.attachments.filter((a) => a.kind === 'audio').forEach((a) => node.append(el('audio', {
          controls: '', preload: 'none', src: mediaHref(a), 'data-testid': 'recording', 'aria-label': T.recording})));
        node.append(el('div', {class: 'attachments'}, T.attachments + ': ',
          ...item.attachments.map((a) => el('a', {href: mediaHref(a), target: '_blank', rel: 'noopener'}, a.name || a.kind))));
      }
      return node;
    }
    let text;
    if (item.kind === 'status') text = `${T.status_change}: ${T['s_' + item.from_status] || item.from_status || ''} → ${T['s_' + item.to_status] || item.to_status}`;
    else if (item.kind === 'note') text = `${T.note}: ${item.reason}`;
    else if (item.kind === 'csat') text = `${T.csat_event}: ${item.data.score}/5`;
    else if (item.kind === 'assign') text = `${T.assign}: ${item.data.agent_id}`;
    else text = `${item.kind}: ${item.reason || ''}`;
    const why = item.kind === 'status' && item.reason ? ` (${item.reason})` : '';
    return el('li', {class: 'event ' + item.kind, 'data-testid': 'history-event', 'data-kind': item.kind},
      `${time(item.created_at)} · ${item.actor_name}: ${text}${why}`);
  }

  async function openConversation(id) {
    current = id;
    follow();
    const c = await api('/conversations/' + encodeURIComponent(id));
    if (c.id !== current) return;
    $('conversation').hidden = false;
    $('c-title').textContent = `${c.channel} · ${c.contact.name || c.id.slice(0, 8)}`;
    $('c-status').textContent = T['s_' + c.status] || c.status;
    $('c-status').dataset.status = c.status;
    $('claim').hidden = c.status === 'open' && c.agent_id === me;
    $('resolve').hidden = !['open', 'pending'].includes(c.status);
    $('handback').hidden = !['open', 'pending'].includes(c.status);
    $('history').replaceChildren(...c.history.map(renderItem));
    $('history').scrollTop = $('history').scrollHeight;
    $('conversation').dataset.language = c.language;
    const panel = $('contact');
    panel.replaceChildren(...[
      el('h3', {}, c.contact.name || c.contact.id.slice(0, 8)), c.contact.phone ? el('p', {}, c.contact.phone) : null,
      el('h4', {}, T.identities), el('ul', {}, ...c.contact.identities.map((i) => el('li', {}, `${i.channel}: ${i.user}`))),
      el('h4', {}, T.earlier), el('ul', {}, ...(c.contact.conversations.length ? c.contact.conversations.map((o) => el('li', {},
        el('a', {href: '#', 'data-id': o.id}, `${o.channel} · ${T['s_' + o.status] || o.status} · ${time(o.last_activity_at)}`))) : [el('li', {}, T.none)])),
      el('h4', {}, T.work_orders), el('ul', {'data-testid': 'work-orders'}, ...(c.contact.work_orders.length ? c.contact.work_orders.map((w) => el('li', {},
        `${w.number} · ${w.title} · ${w.status}`)) : [el('li', {}, T.none)])),
    ].filter(Boolean));
    const form = $('work-order');
    form.hidden = false;
    form.dataset.contactId = c.contact.id;
    form.dataset.channel = c.channel;
    form.dataset.language = c.language;
    panel.querySelectorAll('a[data-id]').forEach((a) => a.addEventListener('click', (e) => { e.preventDefault(); openConversation(a.dataset.id); }));
    document.querySelectorAll('#conversations li').forEach((li) => li.classList.toggle('selected', li.dataset.conversationId === id));
  }

  const action = (name) => async () => { if (current) { await post(`/conversations/${current}/${name}`); await refresh(); } };
  $('claim').addEventListener('click', action('claim'));
  $('resolve').addEventListener('click', action('resolve'));
  $('handback').addEventListener('click', action('hand-back'));
  $('send').addEventListener('click', async () => {
    const text = $('reply').value.trim();
    if (!text || !current) return;
    await post(`/conversations/${current}/reply`, {text});
    $('reply').value = '';
    await refresh();
  });
  $('attach').addEventListener('click', async () => {
    const input = $('attach-file');
    if (!current || !input.files.length) return;
    const form = new FormData();
    form.append('file', input.files[0]);
    form.append('caption', $('reply').value.trim());
    const response = await fetch(`/api/inbox/conversations/${current}/attachments`, {
      method: 'POST', credentials: 'same-origin', headers: {'X-CSRF-Token': csrf}, body: form,
    });
    const data = await response.json();
    if (!response.ok) { alert(data.detail || response.statusText); return; }
    input.value = '';
    $('reply').value = '';
    await refresh();
  });
  $('reply').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('send').click(); } });
  $('add-note').addEventListener('click', async () => {
    const text = $('note').value.trim();
    if (!text || !current) return;
    await post(`/conversations/${current}/notes`, {text});
    $('note').value = '';
    await openConversation(current);
  });
  $('canned').addEventListener('change', () => {
    const chosen = canned.find((c) => c.key === $('canned').value);
    const language = $('conversation').dataset.language === 'en' ? 'en' : 'zh';
    if (chosen) $('reply').value = chosen[language];
    $('canned').value = '';
  });
  $('transfer').addEventListener('change', async () => {
    const value = $('transfer').value;
    $('transfer').value = '';
    if (!value || !current) return;
    const [kind, target] = value.split(':');
    await post(`/conversations/${current}/transfer`, kind === 'agent' ? {agent_id: Number(target)} : {department: target});
    await refresh();
  });
  $('work-order').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    const data = new FormData(form);
    // The work-order API (crm_adapter) takes the inbox session with its CSRF token.
    const response = await fetch('/api/work-orders', {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
      body: JSON.stringify({
        category: data.get('category'), description: data.get('description'), location: data.get('location') || null,
        contact_id: form.dataset.contactId, channel: form.dataset.channel, conversation_id: current,
        language: form.dataset.language === 'en' ? 'en' : 'zh',
      }),
    });
    const created = await response.json();
    if (!response.ok) { alert(created.detail || response.statusText); return; }
    form.reset();
    await post(`/conversations/${current}/notes`, {text: `${T.file_work_order}: ${created.order.number}`});
    await openConversation(current);
  });
  ['f-status', 'f-assignee', 'f-channel', 'f-department'].forEach((id) => $(id).addEventListener('change', loadList));
  $('online').addEventListener('change', () => api('/me', {method: 'PATCH', body: JSON.stringify({online: $('online').checked})}));
  $('language').addEventListener('change', async () => {
    await api('/me', {method: 'PATCH', body: JSON.stringify({language: $('language').value})});
    window.location.reload();
  });
  $('logout').addEventListener('click', async () => { await post('/logout'); window.location.href = '/inbox/login'; });

  async function loadStats() {
    if (body.dataset.supervisor !== 'true') return;
    const s = await api('/stats');
    $('stats').replaceChildren(el('h3', {}, T.queues),
      el('p', {'data-testid': 'stat-waiting'}, `${T.s_pending}: ${s.waiting}`),
      el('p', {}, `${T.longest}: ${duration(s.longest_wait_seconds)}`),
      el('p', {}, `${T.first_response}: ${duration(s.first_response_seconds_avg)}`),
      el('p', {'data-testid': 'stat-csat'}, `${T.csat}: ${s.csat_today.average === null ? '–' : s.csat_today.average.toFixed(2)} (${s.csat_today.count})`),
      el('h4', {}, T.open_per_agent),
      el('ul', {}, ...s.open_per_agent.map((a) => el('li', {}, `${a.online ? '●' : '○'} ${a.name}: ${a.open}/${a.capacity}`))));
  }

  async function loadStatic() {
    canned = (await api('/canned')).responses;
    $('canned').replaceChildren(el('option', {value: ''}, T.canned), ...canned.map((c) => el('option', {value: c.key}, c[lang].slice(0, 30))));
    agents = await api('/agents');
    const departments = [...new Set(agents.flatMap((a) => a.departments))];
    $('transfer').replaceChildren(el('option', {value: ''}, T.transfer),
      ...agents.filter((a) => a.id !== me && ['agent', 'supervisor'].includes(a.role)).map((a) => el('option', {value: `agent:${a.id}`}, `${a.name}${a.online ? ' ●' : ''}`)),
      ...departments.map((d) => el('option', {value: `department:${d}`}, T.to_dept + d)));
  }

  let pending = null;
  async function refresh() {
    // Bursts of events become one reload.
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      await loadList();
      if (current) await openConversation(current);
      await loadStats();
    }, 50);
  }

  // ---- live -------------------------------------------------------------------------------------------------
  let socket = null;
  function follow() {
    if (socket && socket.readyState === WebSocket.OPEN && current) socket.send(JSON.stringify({type: 'follow', conversation_id: current}));
  }
  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/api/inbox/ws`);
    $('live').dataset.state = 'connecting';
    socket.addEventListener('open', () => { $('live').dataset.state = 'open'; $('live').textContent = '●'; follow(); refresh(); });
    socket.addEventListener('message', (event) => {
      const data = JSON.parse(event.data);
      if (data.type === 'typing' || data.type === 'pong') return;
      refresh();
    });
    socket.addEventListener('close', () => { $('live').dataset.state = 'closed'; $('live').textContent = '○'; setTimeout(connect, 2000); });
  }

  loadStatic().then(loadList).then(loadStats).then(connect);
  setInterval(() => { loadList(); loadStats(); }, 30000);  // waiting times move on even when nothing happens
})();
