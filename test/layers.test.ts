// shared/ in layers: core at the bottom, and above it server, login and channels, which know nothing of each other.
// A file imports only from its own folder or from a lower layer, never from a higher one or a sibling, and no
// imports go round in a circle.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { root } from './helpers.ts';

/**
 * Each folder of shared/ and its layer: a file may import from a folder of a lower layer only. tools/, the commands a
 * reader runs on the project itself (`npm run diff`, `npm run patches`), is above them all, as the steps are.
 */
export const layers: Record<string, number> = { core: 0, server: 1, login: 1, channels: 1, tools: 2 };

/** Every TypeScript file under shared/, as a path from the project's root. */
function sharedFiles(): string[] {
  return readdirSync(join(root, 'shared'), { recursive: true, encoding: 'utf8' })
    .filter((file) => /\.ts$/.test(file) && !file.endsWith('.d.ts'))
    .map((file) => join('shared', file));
}

/** The files of shared/ that `file` imports (by a relative path), as paths from the project's root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/^(?:import|export)\b[^'"]*?from '(\.[^']+)'|^import '(\.[^']+)'/gm)]
    .map((m) => relative(root, resolve(root, dirname(file), m[1] ?? m[2]!)));
}

const folderOf = (file: string) => file.split('/')[1]!;
/** Whether `file` may import `target`: one in its own folder, or in a folder of a lower layer. */
const allowed = (file: string, target: string) =>
  folderOf(target) === folderOf(file) || layers[folderOf(target)]! < layers[folderOf(file)]!;

describe('the layers of shared/', () => {
  test('every file of shared/ lies in a folder that has a layer', () => {
    const files = sharedFiles();
    assert.ok(files.length >= 30, `${files.length} files`);
    assert.deepEqual(files.filter((file) => !(folderOf(file) in layers)), []);
  });

  test('no file imports from a higher layer, or from a sibling folder', () => {
    const wrong = sharedFiles().flatMap((file) => importsOf(file)
      .filter((target) => target.startsWith('shared/') && !allowed(file, target))
      .map((target) => `${file} imports ${target}`));
    assert.deepEqual(wrong, []);
  });

  test('no imports go round in a circle', () => {
    const graph = new Map(sharedFiles().map((file) => [file, importsOf(file).filter((t) => t.startsWith('shared/'))]));
    const state = new Map<string, 'visiting' | 'done'>();
    const circles: string[] = [];
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') return void circles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
      state.set(file, 'visiting');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    assert.deepEqual(circles, []);
  });

  test('the rule itself: down is allowed; up, and across to a sibling, are not', () => {
    assert.equal(allowed('shared/server/listen.ts', 'shared/core/log.ts'), true);
    assert.equal(allowed('shared/core/log.ts', 'shared/server/listen.ts'), false);
    assert.equal(allowed('shared/server/host-keys.ts', 'shared/login/authorized-keys.ts'), false);
    assert.equal(allowed('shared/login/passwords.ts', 'shared/channels/commands.ts'), false);
    assert.ok(importsOf('shared/server/listen.ts').includes('shared/core/log.ts'));
  });
});
