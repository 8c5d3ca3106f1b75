#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx), so `npx weaver` works without a build step.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
require('tsx/cjs');
require('../src/cli.ts').runCli(process.argv.slice(2));
