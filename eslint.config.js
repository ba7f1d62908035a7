// Lint rules, including the layer rules from DESIGN.md:
// core/common is pure TS (no Node, Electron or Vue); core/node never imports Electron or Vue;
// renderer imports only core/common.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import pluginVue from 'eslint-plugin-vue';
import vueParser from 'vue-eslint-parser';

const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'os', 'child_process', 'net', 'crypto', 'util', 'events', 'stream'];
const uiPackages = ['electron', 'electron/*', 'vue', 'vue/*', 'pinia', 'vue-router', '@xterm/*'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'out/**', 'release/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['core/common/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: [...nodeBuiltins, ...uiPackages], message: 'core/common is pure TypeScript: no Node, Electron or UI imports.' },
          { group: ['**/node/**', '**/electron/**', '**/renderer/**'], message: 'core/common may import only core/common.' },
        ],
      }],
    },
  },
  {
    files: ['core/**/*.ts'],
    ignores: ['core/common/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: uiPackages, message: 'core never imports Electron or UI libraries.' },
          { group: ['**/electron/**', '**/renderer/**'], message: 'core never imports from electron/ or renderer/.' },
        ],
      }],
    },
  },
  // Renderer: Vue single-file components (<script setup lang="ts">) parsed by vue-eslint-parser
  // with typescript-eslint's parser inside; browser globals.
  ...pluginVue.configs['flat/recommended'].map((c) => ({ ...c, files: ['renderer/**/*.vue'] })),
  {
    files: ['renderer/**/*.vue'],
    languageOptions: {
      parser: vueParser,
      parserOptions: { parser: tseslint.parser, sourceType: 'module', extraFileExtensions: ['.vue'] },
    },
  },
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.vue'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.vue'],
    // Build config runs in Node, not in the page.
    ignores: ['renderer/vite.config.ts'],
    rules: {
      // Bare built-in names as exact paths (a pattern like "util" would also match the renderer's
      // own folders, e.g. ../util/format.ts); prefixed and sub-path forms as patterns.
      'no-restricted-imports': ['error', {
        paths: [...nodeBuiltins.filter((n) => !n.includes('*')), 'electron']
          .map((name) => ({ name, message: 'the renderer is sandboxed: no Node or Electron imports.' })),
        patterns: [
          { group: ['node:*', 'fs/*', 'electron/*'], message: 'the renderer is sandboxed: no Node or Electron imports.' },
          { group: ['**/core/node/**', '**/electron/**'], message: 'the renderer imports only core/common.' },
        ],
      }],
    },
  },
);
