// The inbox login form: JSON to /api/inbox/login (a cross-site HTML form cannot send JSON), then to the inbox.
// A file of its own: the staff pages' Content-Security-Policy runs no inline script.
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch('/api/inbox/login', {
    method: 'POST', headers: {'Content-Type': 'application/json'}, credentials: 'same-origin',
    body: JSON.stringify({email: form.get('email'), password: form.get('password')}),
  });
  if (response.ok) { window.location.href = '/inbox'; return; }
  document.querySelector('[data-testid=login-error]').hidden = false;
});
