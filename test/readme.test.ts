import { execFile, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { UserStage } from '../lib';
import { STAGES } from '../lib/stages/stage-table';

/**
 * The README and every page in docs/ say only what is true: their TypeScript compiles against the
 * library, their commands exist (npm scripts, the pinned CDK CLI's subcommands and flags, the
 * context keys the app reads, the files they name), their links resolve, and the README's first
 * screen has the picture, the two commands and the prerequisites.
 */

const ROOT = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Doc {
  /** Relative to the repository root, such as `docs/constructs.md`. */
  readonly file: string;
  readonly lines: string[];
  readonly blocks: Block[];
  /** The text outside fenced blocks, fenced lines blanked so line numbers stay. */
  readonly prose: string;
}

interface Block {
  readonly lang: string;
  readonly code: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The closest heading above the block. */
  readonly heading: string;
}

function readDoc(file: string): Doc {
  const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
  const blocks: Block[] = [];
  const prose: string[] = [];
  let open: { lang: string; line: number; heading: string; body: string[] } | undefined;
  let heading = '';
  lines.forEach((text, i) => {
    const fence = /^\s*```(\S*)\s*$/.exec(text);
    if (open) {
      if (fence && fence[1] === '') {
        blocks.push({ lang: open.lang, code: open.body.join('\n'), line: open.line, heading: open.heading });
        open = undefined;
      } else {
        open.body.push(text);
      }
      prose.push('');
    } else if (fence) {
      open = { lang: fence[1], line: i + 1, heading, body: [] };
      prose.push('');
    } else {
      const h = /^#{1,6}\s+(.*)$/.exec(text);
      if (h) heading = h[1];
      prose.push(text);
    }
  });
  if (open) throw new Error(`${file}:${open.line}: a code block is never closed`);
  return { file, lines, blocks, prose: prose.join('\n') };
}

const DOCS: Doc[] = [
  'README.md',
  ...fs
    .readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
].map(readDoc);
const README = DOCS[0];

/** Inline code spans in the prose (a span may wrap onto the next line), with their line. */
function inlineCode(doc: Doc): { code: string; line: number }[] {
  const spans: { code: string; line: number }[] = [];
  for (const m of doc.prose.matchAll(/`([^`]+)`/g)) {
    spans.push({
      code: m[1].replace(/\s+/g, ' ').trim(),
      line: doc.prose.slice(0, m.index).split('\n').length,
    });
  }
  return spans;
}

// ---------------------------------------------------------------------------------------------
// (a) Every ```ts block compiles, on its own and strict, against lib/ as the package
// `cdk-scale-stages`: all blocks in one run of TypeScript 7's tsc (about 2 s; the TypeScript 6 API
// took 11 s to load aws-cdk-lib's declarations).

describe('TypeScript blocks', () => {
  const blocks = DOCS.flatMap((doc) =>
    doc.blocks.filter((b) => b.lang === 'ts' || b.lang === 'typescript').map((block) => ({ doc, block })),
  );

  test('there are blocks to compile', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(10);
  });

  test('each block compiles on its own, strict, against the library', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'doc-blocks-'));
    try {
      const files = blocks.map(({ doc, block }) => {
        const file = path.join(dir, `${doc.file.replace(/\W/g, '_')}_L${block.line}.ts`);
        fs.writeFileSync(file, block.code);
        return file;
      });
      const tsconfig = {
        compilerOptions: {
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          target: 'es2022',
          lib: ['es2022'],
          module: 'node16',
          moduleResolution: 'node16',
          types: ['node'],
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
          // The package as users import it, and everything else from this repository's node_modules.
          paths: {
            'cdk-scale-stages': [path.join(ROOT, 'lib', 'index.ts')],
            '*': [path.join(ROOT, 'node_modules', '*')],
          },
        },
        files,
      };
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
      const tsc = path.join(ROOT, 'node_modules', 'typescript-7', 'bin', 'tsc');
      const run = spawnSync(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { encoding: 'utf8' });
      const errors = run.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          // file(line,col): error TS…: message -> the document and its line
          const m = /^(.*?)\((\d+),\d+\): (.*)$/.exec(line);
          const i = m ? files.findIndex((f) => path.resolve(dir, m[1]) === f) : -1;
          if (!m || i < 0) return line;
          const { doc, block } = blocks[i];
          return `${doc.file}:${block.line + Number(m[2])}: ${m[3]}`;
        });
      expect(errors).toEqual([]);
      expect(run.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// (b) Every command is real.

const execFileAsync = promisify(execFile);
const CDK_VERSION = pkg.devDependencies['aws-cdk'];
const CDK_BIN = path.join(path.dirname(require.resolve('aws-cdk/package.json')), 'bin', 'cdk');

/** `cdk [sub] --help` of the pinned CLI, cached on disk per CLI version (each run costs about 1 s). */
async function cdkHelp(sub?: string): Promise<string> {
  const cache = path.join(os.tmpdir(), 'cdk-scale-stages-cdk-help', CDK_VERSION, `${sub ?? '_'}.txt`);
  if (fs.existsSync(cache)) return fs.readFileSync(cache, 'utf8');
  const { stdout } = await execFileAsync(process.execPath, [CDK_BIN, ...(sub ? [sub] : []), '--help'], {
    cwd: os.tmpdir(), // no cdk.json: help needs no app
  });
  fs.mkdirSync(path.dirname(cache), { recursive: true });
  fs.writeFileSync(cache, stdout);
  return stdout;
}

/** The option names a help text lists in its option column, such as `--context` and `-c`. */
function optionsOf(help: string): Set<string> {
  const options = new Set<string>();
  for (const m of help.matchAll(/^ {2}(-[^\s].*?)(?: {2,}|$)/gm)) {
    for (const name of m[1].split(/,\s*/)) options.add(name.trim());
  }
  return options;
}

/** The context keys the app reads: `readString(node, 'key')` and `tryGetContext('key')` in lib/ and bin/. */
function contextKeysReadByTheApp(): Set<string> {
  const keys = new Set<string>();
  const stages = path.join(ROOT, 'lib', 'stages');
  const files = [
    path.join(ROOT, 'bin', 'app.ts'),
    ...fs
      .readdirSync(stages, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => path.join(stages, f)),
  ];
  for (const file of files) {
    const source = fs.readFileSync(file, 'utf8');
    for (const m of source.matchAll(/(?:readString\(\s*[\w.]+,\s*|tryGetContext\(\s*)'([A-Za-z][\w-]*)'/g)) {
      keys.add(m[1]);
    }
  }
  return keys;
}

/**
 * sh blocks whose commands run on a server or on a user's machine, not here, with the test that runs
 * them (or, for the install commands, their equivalent without network).
 * Keyed by the heading the block sits under.
 */
const RUN_BY_ANOTHER_TEST: Record<string, string> = {
  'If the automatic migration refused': 'test/migration.test.ts',
  // Packs and installs the tarball as the block does, offline, and holds the block's names and pins.
  'Use it in your own CDK app': 'test/consumer.test.ts',
  // Runs the script against a stand-in AWS CLI and holds the order of its calls.
  'The promotion runbook': 'test/promote-region.test.ts',
  // Runs the script's subcommands against three PostgreSQL servers (with SHARDS, and as here, with the
  // app environment's DATABASE_SHARDS).
  'The resharding runbook': 'test/reshard.test.ts',
};

/** Paths in the repository a command or a span may name; each must exist. */
const REPO_PATH = /^(?:assets|bin|docs|lib|scripts|test)\/[\w./-]*$/;

interface Command {
  readonly where: string;
  readonly words: string[];
  /** Folders that earlier commands of the same block write with `-o`. */
  readonly outputs: string[];
}

/** The commands of a sh block: continuation lines joined, comments dropped, split at `&&`, `;`, `|`. */
function commandsOf(code: string): string[][] {
  return code
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, ''))
    .flatMap((line) => line.split(/&&|\|\||;|\|/))
    .map((command) => command.trim().split(/\s+/).filter(Boolean))
    .filter((words) => words.length > 0);
}

function collectCommands(): { commands: Command[]; unchecked: string[] } {
  const commands: Command[] = [];
  const unchecked: string[] = [];
  for (const doc of DOCS) {
    for (const block of doc.blocks.filter((b) => b.lang === 'sh' || b.lang === 'bash')) {
      if (RUN_BY_ANOTHER_TEST[block.heading]) continue;
      const outputs: string[] = [];
      for (const words of commandsOf(block.code)) {
        const where = `${doc.file}:${block.line}: ${words.join(' ')}`;
        if (words[0] !== 'npm' && words[0] !== 'npx') {
          unchecked.push(where);
          continue;
        }
        commands.push({ where, words, outputs: [...outputs] });
        const o = words.findIndex((w) => w === '-o' || w === '--output');
        if (o >= 0 && words[o + 1]) outputs.push(words[o + 1]);
      }
    }
    for (const span of inlineCode(doc)) {
      if (/^(npm|npx) /.test(span.code)) {
        commands.push({
          where: `${doc.file}:${span.line}: ${span.code}`,
          words: span.code.split(' '),
          outputs: [],
        });
      }
    }
  }
  return { commands, unchecked };
}

describe('commands', () => {
  const { commands, unchecked } = collectCommands();
  const cdkCommands = commands.filter((c) => c.words[0] === 'npx');
  const helps = new Map<string, string>();

  beforeAll(async () => {
    const subs = [...new Set(cdkCommands.map((c) => c.words[2]).filter(Boolean))];
    const texts = await Promise.all([cdkHelp(), ...subs.map((s) => cdkHelp(s))]);
    helps.set('', texts[0]);
    subs.forEach((s, i) => helps.set(s, texts[i + 1]));
  }, 60_000);

  test('the documents have commands to check', () => {
    expect(commands.map((c) => c.words.slice(0, 3).join(' '))).toEqual(
      expect.arrayContaining(['npm ci', 'npm test', 'npx cdk synth', 'npx cdk diff', 'npx cdk deploy']),
    );
  });

  test('every sh block runs only npm and the pinned CDK CLI, unless another test runs it', () => {
    expect(unchecked).toEqual([]);
    for (const [heading, testFile] of Object.entries(RUN_BY_ANOTHER_TEST)) {
      expect(fs.readFileSync(path.join(ROOT, testFile), 'utf8')).toContain(heading);
    }
  });

  test('npm commands are npm built-ins or scripts in package.json', () => {
    const problems = commands
      .filter((c) => c.words[0] === 'npm')
      .flatMap(({ where, words }) => {
        const [, sub, script] = words;
        if (sub === 'ci' || sub === 'install') return [];
        if (sub === 'test' || sub === 'start')
          return pkg.scripts[sub] ? [] : [`${where}: no "${sub}" script`];
        if (sub === 'run')
          return pkg.scripts[script] ? [] : [`${where}: no "${script}" script in package.json`];
        return [`${where}: npm ${sub} is not a command this test knows`];
      });
    expect(problems).toEqual([]);
  });

  test('npx runs the pinned CDK CLI with subcommands and flags it has', () => {
    expect(pkg.devDependencies['aws-cdk']).toMatch(/^\d+\.\d+\.\d+$/);
    const known = new Set([...helps.get('')!.matchAll(/^ {2}cdk ([a-z-]+)/gm)].map((m) => m[1]));
    const problems = cdkCommands.flatMap(({ where, words }) => {
      if (words[1] !== 'cdk') return [`${where}: npx runs only the pinned cdk here, not ${words[1]}`];
      const sub = words[2];
      if (sub === undefined) return []; // the CLI itself, as in `npx cdk`
      if (!known.has(sub)) return [`${where}: cdk ${sub} is not a command of aws-cdk ${CDK_VERSION}`];
      const options = optionsOf(helps.get(sub)!);
      return words
        .slice(3)
        .filter((w) => /^--?[A-Za-z]/.test(w))
        .map((w) => w.split('=')[0])
        .filter((flag) => !options.has(flag) && !options.has(flag.replace(/^--no-/, '--')))
        .map((flag) => `${where}: cdk ${sub} has no ${flag}`);
    });
    expect(problems).toEqual([]);
  });

  test('-c sets only context keys the app reads, and stage only to a stage id', () => {
    const keys = contextKeysReadByTheApp();
    expect([...keys]).toEqual(expect.arrayContaining(['stage', 'appName', 'regions']));
    const stages = new Set<string>([...Object.values(UserStage), 'all']);
    const problems: string[] = [];
    for (const doc of DOCS) {
      const texts = [
        ...doc.blocks.filter((b) => b.lang === 'sh').map((b) => ({ text: b.code, line: b.line })),
        ...inlineCode(doc).map((s) => ({ text: s.code, line: s.line })),
      ];
      for (const { text, line } of texts) {
        for (const m of text.matchAll(/(?:^|\s)(?:-c|--context)\s+([^\s=]+)=(\S*)/g)) {
          const [, key, value] = m;
          if (!keys.has(key)) problems.push(`${doc.file}:${line}: the app reads no context key '${key}'`);
          if (key === 'stage' && !/^<.*>$/.test(value) && !stages.has(value)) {
            problems.push(`${doc.file}:${line}: '${value}' is no stage`);
          }
          const [from, to] = value.split('->');
          if (key === 'allowStageChange' && !(stages.has(from) && stages.has(to))) {
            problems.push(`${doc.file}:${line}: '${value}' is no '<stage>-><stage>'`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  test('the files and folders they name exist', () => {
    const problems: string[] = [];
    for (const doc of DOCS) {
      for (const span of inlineCode(doc)) {
        for (const word of span.code.split(' ')) {
          if (REPO_PATH.test(word) && !fs.existsSync(path.join(ROOT, word))) {
            problems.push(`${doc.file}:${span.line}: ${word} does not exist`);
          }
        }
      }
    }
    for (const { where, words, outputs } of commands) {
      words.forEach((word, i) => {
        if (REPO_PATH.test(word) && !fs.existsSync(path.join(ROOT, word))) {
          problems.push(`${where}: ${word} does not exist`);
        }
        if (words[i - 1] === '--template') {
          const written = outputs.some((dir) => word.startsWith(`${dir.replace(/\/$/, '')}/`));
          if (!written && !fs.existsSync(path.join(ROOT, word))) {
            problems.push(`${where}: ${word} neither exists nor is written by an earlier -o of the block`);
          }
        }
      });
    }
    expect(problems).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// (c) Every relative link resolves, anchors included.

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(doc: Doc): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of doc.prose.split('\n')) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const slug = h[1]
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}_ -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

function linksOf(doc: Doc): { target: string; line: number }[] {
  const withoutCode = doc.prose.replace(/`[^`]*`/g, (s) => s.replace(/[^\n]/g, ' '));
  return [...withoutCode.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => ({
    target: m[1],
    line: withoutCode.slice(0, m.index).split('\n').length,
  }));
}

describe('links', () => {
  test('every relative link and anchor resolves', () => {
    const byFile = new Map(DOCS.map((d) => [d.file, d]));
    const problems: string[] = [];
    let checked = 0;
    for (const doc of DOCS) {
      for (const { target, line } of linksOf(doc)) {
        if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto:
        checked++;
        const [file, anchor] = target.split('#');
        const resolved = file
          ? path.posix.normalize(path.posix.join(path.posix.dirname(doc.file), file))
          : doc.file;
        if (!fs.existsSync(path.join(ROOT, resolved))) {
          problems.push(`${doc.file}:${line}: ${target}: ${resolved} does not exist`);
          continue;
        }
        if (anchor !== undefined) {
          const targetDoc = byFile.get(resolved);
          if (!targetDoc)
            problems.push(`${doc.file}:${line}: ${target}: anchors are checked only in README.md and docs/`);
          else if (!anchorsOf(targetDoc).has(anchor)) {
            problems.push(`${doc.file}:${line}: ${target}: ${resolved} has no heading #${anchor}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });

  test('every page in docs/ is linked from the README', () => {
    const linked = new Set(linksOf(README).map((l) => l.target.split('#')[0]));
    expect(
      DOCS.slice(1)
        .map((d) => d.file)
        .filter((f) => !linked.has(f)),
    ).toEqual([]);
  });

  test("the README's contents list every section of the README", () => {
    const contents = README.prose.split(/^## Contents$/m)[1]?.split(/^## /m)[0];
    expect(contents).toBeDefined();
    const listed = new Set(linksOf({ ...README, prose: contents! }).map((l) => l.target));
    const sections = [...README.prose.matchAll(/^## (.*)$/gm)]
      .map((m) => m[1])
      .filter((s) => s !== 'Quick start' && s !== 'Contents');
    const anchors = [...anchorsOf({ ...README, prose: sections.map((s) => `## ${s}`).join('\n') })];
    expect(anchors.filter((a) => !listed.has(`#${a}`))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// (d) The first screen: the picture, the two commands, what you need.

describe("the README's first screen (40 lines)", () => {
  const screen = README.lines.slice(0, 40).join('\n');
  const screenBlocks = README.blocks.filter((b) => b.line + b.code.split('\n').length < 40);

  test('has a picture: a Mermaid flowchart', () => {
    const picture = screenBlocks.find((b) => b.lang === 'mermaid');
    expect(picture?.code).toMatch(/^flowchart (LR|RL|TD|TB|BT)\n/);
  });

  test('has the two commands of the quick start, exactly', () => {
    expect(screenBlocks.filter((b) => b.lang === 'sh').map((b) => b.code)).toContain(
      'npm ci && npx cdk synth\nnpm test',
    );
  });

  test('says what you need: the Node.js of package.json, the pinned CLI, an AWS account to deploy', () => {
    const nodeMajor = /^>=\s*(\d+)/.exec(pkg.engines.node)![1];
    expect(screen).toContain(`Node.js ${nodeMajor} or newer`);
    expect(screen).toContain(`\`aws-cdk\` ${CDK_VERSION}`);
    expect(screen).toMatch(/AWS account only to deploy/);
    expect(screen).toContain('npx cdk bootstrap');
  });
});

test("the stage table's layers column is the stage table's, row by row", () => {
  const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const rows = Object.fromEntries(
    [...text.matchAll(/^\| `([0-9a-z]+)` +\| [0-9,]+ +\| ([^|]+)\|/gm)].map((m) => [m[1], m[2].trim()]),
  );
  const fromTable = Object.fromEntries(
    STAGES.map((row) => [
      row.stage,
      [...row.adds.map((l) => `+${l}`), ...(row.drops ?? []).map((l) => `-${l}`)].join(' '),
    ]),
  );
  expect(rows).toEqual(fromTable);
});
