#!/usr/bin/env node
// The `graft` command: loads the CLI's TypeScript sources through tsx, runs it, exits with its code.
// Ctrl-C while following a job stops following (exit 130); the job itself goes on.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/cli/main.ts');
const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
process.exitCode = await run(process.argv.slice(2), undefined, controller.signal);
