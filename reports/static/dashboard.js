// The dashboard: the period's figures from /api/reports/summary, each drawn as a chart with its table (zh/en).
(() => {
  const lang = document.body.dataset.language === 'en' ? 'en' : 'zh';
  const zone = document.body.dataset.timezone || 'Asia/Shanghai';
  const TEXT = {
    zh: { title: '服务数据', inbox: '工作台', from: '从', to: '到', channel: '渠道', language: '语言', all: '全部', show: '查看',
      csv: '导出 CSV', xlsx: '导出 Excel', by_channel: '各渠道会话', handoffs: '转人工原因', departments: '部门考核',
      conversations: '会话', messages: '消息', citizens: '来访市民', new_citizens: '首次来访', containment_rate: '机器人独立解决率',
      handoff_rate: '转人工率', department: '部门', filed: '受理', response_rate: '按时签收率', resolution_rate: '办结率',
      satisfaction_rate: '满意率', on_time_rate: '按期办结率', overdue: '超期', returned: '退单', count: '数量', reason: '原因',
      none: '无数据', failed: '数据加载失败', people: '坐席', name: '坐席/队列', answered: '接待', frt50: '首次响应中位数(秒)',
      frt90: '首次响应P90(秒)', csat: '满意度均分' },
    en: { title: 'Service figures', inbox: 'Inbox', from: 'From', to: 'To', channel: 'Channel', language: 'Language', all: 'All',
      show: 'Show', csv: 'Export CSV', xlsx: 'Export Excel', by_channel: 'Conversations by channel', handoffs: 'Why people were needed',
      departments: 'Departments', conversations: 'Conversations', messages: 'Messages', citizens: 'Citizens',
      new_citizens: 'New citizens', containment_rate: 'Settled by the bot', handoff_rate: 'Handed to a person',
      department: 'Department', filed: 'Filed', response_rate: 'Accepted in time', resolution_rate: 'Resolved',
      satisfaction_rate: 'Satisfied', on_time_rate: 'On time', overdue: 'Overdue', returned: 'Returned', count: 'Count',
      reason: 'Reason', none: 'No data', failed: 'The figures could not be loaded', people: 'Agents and queues',
      name: 'Agent / queue', answered: 'Answered', frt50: 'First response p50 (s)', frt90: 'First response p90 (s)',
      csat: 'CSAT average' },
  }[lang];
  document.querySelectorAll('[data-i18n]').forEach((n) => { n.textContent = TEXT[n.dataset.i18n] || n.dataset.i18n; });
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElementNS(tag === 'svg' || attrs.svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
    for (const [k, v] of Object.entries(attrs)) if (k !== 'svg' && v !== null && v !== undefined) node.setAttribute(k, v);
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  const pct = (v) => v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`;
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(new Date());
  $('to').value = today;
  $('from').value = today.slice(0, 8) + '01';

  function table(headers, rows, testid) {
    return el('table', { class: 'figures', 'data-testid': testid },
      el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, String(c)))))));
  }

  function bars(entries, label) {
    // A horizontal bar chart in SVG: one bar per entry, its value written beside it.
    const max = Math.max(1, ...entries.map(([, v]) => v));
    const height = entries.length * 22 + 4;
    const svg = el('svg', { class: 'chart', width: '100%', height, viewBox: `0 0 420 ${height}`, role: 'img', 'aria-label': label });
    entries.forEach(([name, value], i) => {
      const y = i * 22 + 2;
      svg.append(el('text', { svg: true, x: 0, y: y + 14 }, name));
      svg.append(el('rect', { svg: true, class: 'bar', x: 120, y, height: 16, width: Math.max(1, 260 * value / max) }));
      svg.append(el('text', { svg: true, x: 125 + 260 * value / max, y: y + 14 }, String(value)));
    });
    return svg;
  }

  function render(data) {
    const tiles = document.querySelector('[data-testid=tiles]');
    tiles.replaceChildren(...[
      ['conversations', data.conversations], ['messages', data.messages], ['citizens', data.citizens],
      ['new_citizens', data.new_citizens], ['containment_rate', pct(data.containment_rate)],
      ['handoff_rate', pct(data.handoff_rate)],
    ].map(([key, value]) => el('div', { class: 'tile', 'data-testid': `tile-${key}` },
      el('div', { class: 'value' }, String(value)), el('div', { class: 'small' }, TEXT[key]))));
    const channels = Object.entries(data.by_channel).sort((a, b) => b[1] - a[1]);
    $('channels').replaceChildren(...(channels.length
      ? [bars(channels, TEXT.by_channel), table([TEXT.channel, TEXT.conversations], channels, 'channel-table')]
      : [el('p', {}, TEXT.none)]));
    const reasons = Object.entries(data.handoff_reasons);
    $('reasons').replaceChildren(...(reasons.length
      ? [bars(reasons, TEXT.handoffs), table([TEXT.reason, TEXT.count], reasons, 'reason-table')]
      : [el('p', {}, TEXT.none)]));
    const columns = ['filed', 'response_rate', 'resolution_rate', 'satisfaction_rate', 'on_time_rate', 'overdue', 'returned'];
    const rows = data.departments.map((d) => [d.department, ...columns.map((c) => c.endsWith('_rate') ? pct(d[c]) : d[c])]);
    const people = [...data.agents, ...data.queues].map((p) => [p.name, p.answered,
      p.first_response_p50_seconds ?? '–', p.first_response_p90_seconds ?? '–', p.csat_average ?? '–']);
    $('people').replaceChildren(...(people.length
      ? [table([TEXT.name, TEXT.answered, TEXT.frt50, TEXT.frt90, TEXT.csat], people, 'people-table')]
      : [el('p', {}, TEXT.none)]));
    $('departments').replaceChildren(...(rows.length
      ? [table([TEXT.department, ...columns.map((c) => TEXT[c])], rows, 'department-table')]
      : [el('p', {}, TEXT.none)]));
  }

  async function load() {
    const query = new URLSearchParams();
    for (const name of ['from', 'to', 'channel', 'language']) if ($(name).value) query.set(name, $(name).value);
    $('csv').href = `/api/reports/summary.csv?${query}`;
    $('xlsx').href = `/api/reports/summary.xlsx?${query}`;
    $('error').textContent = '';
    const response = await fetch(`/api/reports/summary?${query}`, { credentials: 'same-origin' });
    if (!response.ok) { $('error').textContent = `${TEXT.failed} (${response.status})`; return; }
    render(await response.json());
    document.body.dataset.loaded = 'true';
  }

  $('period').addEventListener('submit', (event) => { event.preventDefault(); load(); });
  load();
})();
