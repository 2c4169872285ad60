#!/usr/bin/env node
// The `graft` command. Installed from the package it runs dist/ (built JavaScript); in graft's own
// tree, where the sources are, it runs them through tsx so that a change needs no build.
// Ctrl-C while following a job stops following (exit 130); the job itself goes on.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  main = await import(sources.href);
} else {
  main = await import('../dist/cli/main.js');
}
const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
process.exitCode = await main.run(process.argv.slice(2), undefined, controller.signal);
