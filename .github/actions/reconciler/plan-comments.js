// Posts a Markdown plan (`reconciler plan --format markdown`) as sticky pull-request comments:
// one comment per plan part, found again by the part marker on its first line, so a new push
// edits the comments instead of adding more. At most `limit` comments (default 10): a plan of
// more parts (a huge spec) keeps the rest in the job summary and the plan artifact, and the
// last comment says so. Run by actions/github-script in plan.yml and in the composite action:
//
//   await require(process.env.COMMENT_SCRIPT)({github, context, core}, {file, limit, artifact});
'use strict';

const fs = require('fs');

const MARKER = /^<!-- reconciler:part (\d+)\/(\d+) -->$/;
const DEFAULT_LIMIT = 10;

// The plan's parts, each starting with its marker line.
function splitParts(markdown) {
  const parts = [];
  for (const line of markdown.split('\n')) {
    if (MARKER.test(line)) parts.push([line]);
    else if (parts.length) parts[parts.length - 1].push(line);
  }
  return parts.map((lines) => lines.join('\n').trim());
}

function readLimit(value) {
  const text = String(value ?? '').trim();
  if (text === '') return DEFAULT_LIMIT;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > 100) {
    throw new Error(`the comment limit must be a whole number from 1 to 100, not '${text}'`);
  }
  return Number(text);
}

// The bodies to post: the first `limit` parts, the last of them saying where the rest is.
function commentBodies(parts, limit, artifact) {
  if (parts.length <= limit) return parts;
  const kept = parts.slice(0, limit);
  const where = artifact ? `the job summary and the artifact \`${artifact}\`` : 'the job summary';
  kept[limit - 1] += `\n\n> [!NOTE]\n> This plan has ${parts.length} parts; only the first ${limit} are `
    + `posted as comments. Parts ${limit + 1}-${parts.length} are in ${where} of this workflow run.`;
  return kept;
}

async function postPlan({ github, context, core }, { file, limit, artifact } = {}) {
  const max = readLimit(limit);
  const parts = splitParts(fs.readFileSync(file, 'utf8'));
  if (parts.length === 0) {
    core.warning('the plan printed no Markdown part: no comment posted');
    return { posted: 0, parts: 0 };
  }
  const bodies = commentBodies(parts, max, artifact);
  if (bodies.length < parts.length) {
    core.warning(`the plan has ${parts.length} parts: the first ${max} are posted as comments, the rest `
      + 'are in the job summary and the plan artifact');
  }
  const { owner, repo } = context.repo;
  const issue_number = context.issue.number;
  try {
    const comments = await github.paginate(github.rest.issues.listComments,
      { owner, repo, issue_number, per_page: 100 });
    const ours = new Map();
    const stale = [];
    for (const comment of comments) {
      const match = MARKER.exec((comment.body || '').split('\n', 1)[0]);
      if (!match || comment.user?.type !== 'Bot') continue;
      const index = Number(match[1]);
      if (ours.has(index) || index > bodies.length) stale.push(comment);
      else ours.set(index, comment);
    }
    for (const [i, body] of bodies.entries()) {
      const old = ours.get(i + 1);
      if (!old) {
        await github.rest.issues.createComment({ owner, repo, issue_number, body });
      } else if (old.body !== body) {
        await github.rest.issues.updateComment({ owner, repo, comment_id: old.id, body });
      }
    }
    for (const comment of stale) {
      await github.rest.issues.deleteComment({ owner, repo, comment_id: comment.id });
    }
  } catch (error) {
    // A token without pull-requests: write cannot comment; the job summary has the plan.
    core.warning(`could not post the plan as comments: ${error.message}`);
  }
  return { posted: bodies.length, parts: parts.length };
}

module.exports = postPlan;
module.exports.splitParts = splitParts;
module.exports.commentBodies = commentBodies;
module.exports.readLimit = readLimit;
