/**
 * The router: History API paths, one page module each. Leaving a page aborts its signal, which
 * closes its live feeds and timers.
 */
import './style.css';
import { hasApiKey, isUnauthorized, setApiKey } from './api.ts';
import { fill, h, navigate } from './dom.ts';
import { comparePage } from './pages/compare.ts';
import { datasetsPage } from './pages/datasets.ts';
import { jobPage } from './pages/job.ts';
import { jobsPage } from './pages/jobs.ts';
import { newFineTunePage } from './pages/new-fine-tune.ts';
import { tryPage } from './pages/try.ts';

export interface PageContext {
  root: HTMLElement;
  params: Record<string, string>;
  query: URLSearchParams;
  signal: AbortSignal;
}
type Page = (ctx: PageContext) => void | Promise<void>;

const routes: [RegExp, string, Page][] = [
  [/^\/$/, 'jobs', jobsPage],
  [/^\/jobs\/(?<id>ft_[\w-]+)$/, 'jobs', jobPage],
  [/^\/datasets(?:\/(?<id>ds_[\w-]+))?$/, 'datasets', datasetsPage],
  [/^\/new$/, 'new', newFineTunePage],
  [/^\/compare$/, 'compare', comparePage],
  [/^\/try$/, 'try', tryPage],
];

const main = document.getElementById('main')!;
let current: AbortController | null = null;

async function render(): Promise<void> {
  current?.abort();
  const controller = (current = new AbortController());
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const match = routes.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (match && a.dataset.nav === match[1]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = h('div', { class: 'page' });
  fill(main, root);
  if (!match) {
    fill(root, h('h1', null, 'Not found'), h('p', null, 'No page here. ', h('a', { href: '/' }, 'Back to the jobs.')));
    return;
  }
  const params = (match[0].exec(path)?.groups ?? {}) as Record<string, string>;
  try {
    await match[2]({ root, params, query: new URLSearchParams(location.search), signal: controller.signal });
  } catch (err) {
    if (controller.signal.aborted) return;
    if (isUnauthorized(err)) return fill(root, keyForm(hasApiKey()));
    root.append(h('p', { class: 'error', role: 'alert' }, `Could not load this page: ${err instanceof Error ? err.message : String(err)}`));
  }
}

/** The API wants a key (keys mode) or refused the one kept: ask for it, keep it, show the page again. */
function keyForm(refused: boolean): HTMLElement {
  const input = h('input', { id: 'api-key', type: 'password', name: 'apiKey', autocomplete: 'off', required: true, placeholder: 'gk_live_…', size: 50 });
  const form = h('form', { class: 'key-form', onsubmit: (e: Event) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    void render();
  } },
  h('h1', null, 'API key'),
  h('p', { role: refused ? 'alert' : null, class: refused ? 'error' : null },
    refused ? 'The API did not accept the stored key (revoked or mistyped): enter another.' : 'This server needs an API key. Your operator makes one with `npm run admin -- keys create`.'),
  h('label', { for: 'api-key' }, 'Key'), ' ', input, ' ',
  h('button', { type: 'submit' }, 'Use this key'),
  h('p', { class: 'muted' }, 'Kept in this browser (localStorage) and sent as a bearer token with every call.'));
  if (refused) setApiKey(null);
  queueMicrotask(() => input.focus());
  return form;
}

// Same-origin links without a target or download attribute stay in the app.
document.addEventListener('click', (e) => {
  const a = (e.target as Element).closest?.('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download') || a.origin !== location.origin || a.pathname.startsWith('/v1/')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener('popstate', () => void render().then(() => main.focus({ preventScroll: true })));
void render();
