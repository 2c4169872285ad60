// The dashboard is a static bundle the API serves at `/` (apps/api/src/plugins/dashboard.ts).
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 600 },
  // `npx vite` in this folder proxies the API for development.
  server: { proxy: { '/v1': 'http://127.0.0.1:3000', '/readyz': 'http://127.0.0.1:3000' } },
});
