#!/usr/bin/env node
// Validates Forge manifests with Atlassian's own validator, @forge/manifest
// (pinned in package-lock.json): the full validation that `forge lint` and
// `forge deploy` run, plus the product-trigger scope check. Usage:
//   node check.js path/to/manifest.yml [...]
// Prints one line per finding; exits 1 if any manifest has an error.
'use strict';
const { ProcessorBuilder, ValidationTypes } = require('@forge/manifest');

const kinds = [ValidationTypes.FULL, ValidationTypes.PRODUCT_TRIGGER];

async function check(file) {
  let ok = true;
  for (const kind of kinds) {
    const res = await ProcessorBuilder.instance().withValidation(kind).build().process(file);
    for (const e of res.errors || []) {
      const level = e.level || 'error';
      if (level === 'error') ok = false;
      console.log(`${file}:${e.line || 0}:${e.column || 0}: ${level} (${kind}): ${e.message}`);
    }
    if (!res.success) ok = false;
  }
  console.log(`${file}: ${ok ? 'valid' : 'INVALID'}`);
  return ok;
}

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error('usage: node check.js manifest.yml [...]');
    process.exit(2);
  }
  let ok = true;
  for (const f of files) ok = (await check(f)) && ok;
  process.exit(ok ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
