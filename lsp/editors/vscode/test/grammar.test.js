// Checks the extension's static files: the manifest points at files that
// exist, the grammar's patterns compile and classify a sample as expected.
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");

const root = path.join(__dirname, "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
for (const g of pkg.contributes.grammars) {
  assert.ok(fs.existsSync(path.join(root, g.path)), g.path);
}
for (const l of pkg.contributes.languages) {
  assert.ok(fs.existsSync(path.join(root, l.configuration)), l.configuration);
}
JSON.parse(fs.readFileSync(path.join(root, "language-configuration.json"), "utf8"));
const grammar = JSON.parse(
  fs.readFileSync(path.join(root, "syntaxes", "arch.tmLanguage.json"), "utf8")
);

// Every `match`/`begin`/`end` compiles (the patterns use only the syntax
// JavaScript and Oniguruma share).
const regexes = {};
function walk(node, where) {
  if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
  if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (["match", "begin", "end"].includes(k)) {
        regexes[`${where}.${k}`] = new RegExp(v, "g");
      } else {
        walk(v, `${where}.${k}`);
      }
    }
  }
}
walk(grammar, "grammar");
assert.ok(Object.keys(regexes).length >= 15, "patterns found");

const r = grammar.repository;
const matches = (pattern, text) => new RegExp(pattern).test(text);
assert.ok(matches(r.types.match, "input x: f32[B, K]"));
assert.ok(matches(r.quantities.match, "bandwidth: 10 GB/s"));
assert.ok(!matches(r.types.match, "f320"));
assert.ok(matches(r.keywords.patterns[1].match, "  tile y at l2 { i: 64 }"));
assert.ok(matches(r.declarations.patterns[0].match, "workload mlp(B = 256) {"));
assert.ok(matches(r.comments.patterns[0].match, "/// doc"));
console.log(`grammar: ${Object.keys(regexes).length} patterns compile; samples classified`);
