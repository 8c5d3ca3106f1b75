#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx), so `npx weaver` works without a build step.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
require('tsx/cjs');
const { main } = require('../src/cli.ts');
main(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err?.message ?? err); process.exit(1); });
