import assert from 'node:assert/strict';
import { buildCatalogue, type Action } from '../../../src/access/catalogue.js';
import { defaultCatalogue } from '../../../src/access/catalogue-default.js';
import { checkArea, checkInheritance, effectivePermissions, type Subject } from '../../../src/access/effective.js';
import {
  actionsOf,
  indexCatalogue,
  levelOf,
  parseSettings,
  type AreaSettings,
  type Level,
} from '../../../src/access/levels.js';
import { InvalidInput, Unprocessable } from '../../../src/errors.js';

const catalogue = buildCatalogue(defaultCatalogue);
// Three levels deep, and a manage parent over a child without manage, which the default catalogue lacks.
const tiny = buildCatalogue([
  { label: 'Top', children: [{ label: 'Mid', children: [{ label: 'Leaf' }] }, { label: 'Side' }] },
  { label: 'Ops', manage: true, children: [{ label: 'Logs' }] },
]);

const RANK: Record<Level, number> = { none: 0, read: 1, edit: 2, manage: 3 };
const LEVELS = Object.keys(RANK) as Level[];

const member = (own: AreaSettings, template: Subject['template'] = null): Subject => ({
  role: 'member',
  status: 'active',
  own,
  template,
});
const support = (areas: AreaSettings): Subject['template'] => ({ id: 't1', name: 'Support', areas });

function fieldsOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidInput, String(err));
    assert.equal(err.status, 400);
    assert.equal(err.code, 'invalid_permissions');
    return err.extra.fields ?? [];
  }
  assert.fail('expected InvalidInput');
}

function violation(fn: () => unknown): Unprocessable | null {
  try {
    fn();
    return null;
  } catch (err) {
    assert.ok(err instanceof Unprocessable, String(err));
    assert.equal(err.status, 422);
    assert.equal(err.code, 'less_restrictive_than_parent');
    return err;
  }
}

describe('area levels', () => {
  it('reads a level as the highest preset its actions fully contain', () => {
    assert.equal(levelOf([]), 'none');
    assert.equal(levelOf(['create']), 'none');
    assert.equal(levelOf(['view']), 'read');
    assert.equal(levelOf(['view', 'edit']), 'read');
    assert.equal(levelOf(['delete', 'edit', 'create', 'view']), 'edit');
    assert.equal(levelOf(['view', 'create', 'edit', 'delete', 'manage']), 'manage');
    assert.equal(levelOf(['view', 'manage']), 'read');
  });

  it('lists the actions of a setting in canonical order, only those the area has', () => {
    const [knowledge] = catalogue.filter((a) => a.key === 'knowledge');
    const [account] = catalogue.filter((a) => a.key === 'account');
    assert.deepEqual(actionsOf('none', knowledge!), []);
    assert.deepEqual(actionsOf('read', knowledge!), ['view']);
    assert.deepEqual(actionsOf('edit', knowledge!), ['view', 'create', 'edit', 'delete']);
    assert.deepEqual(actionsOf('manage', knowledge!), ['view', 'create', 'edit', 'delete']);
    assert.deepEqual(actionsOf('manage', account!), ['view', 'create', 'edit', 'delete', 'manage']);
    assert.deepEqual(actionsOf(['edit', 'view', 'edit'], knowledge!), ['view', 'edit']);
  });

  it('indexes the catalogue in pre-order with parents and depths', () => {
    const index = indexCatalogue(tiny);
    assert.deepEqual([...index.keys()], ['top', 'top.mid', 'top.mid.leaf', 'top.side', 'ops', 'ops.logs']);
    assert.equal(index.get('top')!.parent, null);
    assert.equal(index.get('top.mid.leaf')!.parent!.key, 'top.mid');
    assert.deepEqual(
      [...index.values()].map((e) => e.depth),
      [0, 1, 2, 1, 0, 1],
    );
  });
});

describe('parseSettings', () => {
  it('answers the settings normalised: levels kept, action lists canonical and deduplicated, catalogue order', () => {
    const parsed = parseSettings(catalogue, {
      'knowledge.faqs': ['delete', 'view', 'delete'],
      knowledge: 'edit',
      account: 'manage',
      flows: [],
    });
    assert.deepEqual(parsed, { knowledge: 'edit', 'knowledge.faqs': ['view', 'delete'], flows: [], account: 'manage' });
    assert.deepEqual(Object.keys(parsed), ['knowledge', 'knowledge.faqs', 'flows', 'account']);
  });

  it('lists every problem at once, each at its area', () => {
    const fields = fieldsOf(() =>
      parseSettings(catalogue, {
        sales: 'read',
        knowledge: 'admin',
        flows: 7,
        tools: ['view', 'fly'],
        testing: 'manage',
        widgets: ['view', 'manage'],
        'voice.numbers': ['edit', 'delete'],
        'account.users': ['view', 'manage'],
      }),
    );
    const at = (path: string): string =>
      fields
        .filter((f) => f.path === path)
        .map((f) => f.message)
        .join(' | ');
    assert.deepEqual(
      new Set(fields.map((f) => f.path)),
      new Set([
        'areas.sales',
        'areas.knowledge',
        'areas.flows',
        'areas.tools',
        'areas.testing',
        'areas.widgets',
        'areas.voice.numbers',
      ]),
    );
    assert.match(at('areas.sales'), /unknown area "sales"/);
    assert.match(at('areas.knowledge'), /"admin"/);
    assert.match(at('areas.flows'), /must be one of none, read, edit, manage or a list of actions/);
    assert.match(at('areas.tools'), /unknown action "fly"/);
    assert.match(at('areas.testing'), /no manage level/);
    assert.match(at('areas.widgets'), /no manage action/);
    assert.match(at('areas.voice.numbers'), /must include view/);
  });

  it('refuses anything but a plain object, at the prefix it is given', () => {
    for (const input of [null, ['read'], 'read', 3, new Map()]) {
      assert.deepEqual(
        fieldsOf(() => parseSettings(catalogue, input, 'template.areas')).map((f) => f.path),
        ['template.areas'],
      );
    }
  });
});

describe('checkInheritance', () => {
  it('accepts a child iff its level is no higher than its parent, on an area with manage', () => {
    for (const parent of LEVELS) {
      for (const child of LEVELS) {
        const settings = parseSettings(catalogue, { account: parent, 'account.users': child });
        const err = violation(() => checkInheritance(catalogue, settings));
        assert.equal(err === null, RANK[child] <= RANK[parent], `${parent} × ${child}`);
        if (err) assert.deepEqual(err.extra.details, { area: 'account.users', parent: 'account', parentLevel: parent });
      }
    }
  });

  it('accepts a child iff its level is no higher than its parent, on an area without manage, where manage is refused', () => {
    for (const parent of LEVELS) {
      for (const child of LEVELS) {
        const input = { knowledge: parent, 'knowledge.faqs': child };
        if (parent === 'manage' || child === 'manage') {
          assert.ok(fieldsOf(() => parseSettings(catalogue, input)).length > 0, `${parent} × ${child}`);
          continue;
        }
        const err = violation(() => checkInheritance(catalogue, parseSettings(catalogue, input)));
        assert.equal(err === null, RANK[child] <= RANK[parent], `${parent} × ${child}`);
      }
    }
  });

  it('names the parent by label and key with its level', () => {
    const err = violation(() => checkInheritance(catalogue, { knowledge: 'read', 'knowledge.faqs': 'edit' }));
    assert.equal(
      err?.message,
      '"knowledge.faqs" cannot be edit: its parent Knowledge (knowledge) is read, and a sub-section may be more restrictive than its parent, never less',
    );
  });

  it('lets a manage parent have a child without manage at its top level', () => {
    assert.equal(
      violation(() => checkInheritance(tiny, { ops: 'manage', 'ops.logs': 'edit' })),
      null,
    );
    assert.notEqual(
      violation(() => checkInheritance(tiny, { ops: 'read', 'ops.logs': 'edit' })),
      null,
    );
  });

  it('compares action sets: a subset passes, a superset is refused naming the parent', () => {
    assert.equal(
      violation(() => checkInheritance(catalogue, { knowledge: ['view', 'edit'], 'knowledge.faqs': ['view'] })),
      null,
    );
    assert.equal(
      violation(() => checkInheritance(catalogue, { knowledge: 'edit', 'knowledge.faqs': ['view', 'edit'] })),
      null,
    );
    const err = violation(() =>
      checkInheritance(catalogue, { knowledge: ['view', 'edit'], 'knowledge.faqs': ['view', 'create'] }),
    );
    assert.deepEqual(err?.extra.details, { area: 'knowledge.faqs', parent: 'knowledge', parentLevel: 'read' });
    assert.match(err!.message, /Knowledge \(knowledge\) is read \(view, edit\)/);
  });

  it('reports the first violation in tree order', () => {
    const err = violation(() =>
      checkInheritance(catalogue, {
        'voice.numbers': 'edit',
        voice: 'none',
        analytics: 'read',
        'analytics.csat': 'edit',
      }),
    );
    assert.equal(err?.extra.details?.area, 'analytics.csat');
  });

  it('holds an area to its nearest set ancestor when its parent is unset', () => {
    const err = violation(() => checkInheritance(tiny, { top: 'read', 'top.mid.leaf': 'edit' }));
    assert.deepEqual(err?.extra.details, { area: 'top.mid.leaf', parent: 'top', parentLevel: 'read' });
  });

  it('holds an area whose parent is unset to the parent in base, and ignores base where the parent is set', () => {
    const base = effectivePermissions(catalogue, member({}, support({ knowledge: 'read' })));
    const err = violation(() => checkInheritance(catalogue, { 'knowledge.faqs': 'edit' }, base));
    assert.deepEqual(err?.extra.details, { area: 'knowledge.faqs', parent: 'knowledge', parentLevel: 'read' });
    assert.equal(
      violation(() => checkInheritance(catalogue, { 'knowledge.faqs': 'read' }, base)),
      null,
    );
    assert.equal(
      violation(() => checkInheritance(catalogue, { 'knowledge.faqs': 'edit' })),
      null,
    );
    assert.equal(
      violation(() => checkInheritance(catalogue, { knowledge: 'edit', 'knowledge.faqs': 'edit' }, base)),
      null,
    );
  });
});

describe('effectivePermissions', () => {
  const all = (tree: ReturnType<typeof effectivePermissions>, prefix: string): Level[] =>
    Object.entries(tree)
      .filter(([key]) => key.startsWith(prefix))
      .map(([, e]) => e.level);

  it('lists every area of the catalogue in pre-order', () => {
    const tree = effectivePermissions(catalogue, member({}));
    assert.deepEqual(Object.keys(tree), [...indexCatalogue(catalogue).keys()]);
  });

  it('makes every descendant of a parent at none none, whatever it sets', () => {
    const tree = effectivePermissions(catalogue, member({ knowledge: 'none', 'knowledge.faqs': 'edit' }));
    assert.deepEqual(all(tree, 'knowledge'), ['none', 'none', 'none', 'none']);
    assert.deepEqual(tree['knowledge.faqs'], {
      level: 'none',
      actions: [],
      reason: 'parent Knowledge (knowledge) is none',
    });
    assert.equal(tree['knowledge.sources']!.reason, 'parent Knowledge (knowledge) is none');
  });

  it('gives an unset child its parent’s actions, less those it does not have', () => {
    const tree = effectivePermissions(catalogue, member({ knowledge: 'edit', account: 'manage' }));
    assert.deepEqual(tree['knowledge.sources'], {
      level: 'edit',
      actions: ['view', 'create', 'edit', 'delete'],
      reason: 'inherited from parent Knowledge (knowledge)',
    });
    assert.equal(tree['account.users']!.level, 'manage');
    const ops = effectivePermissions(tiny, member({ ops: 'manage' }));
    assert.deepEqual(ops['ops.logs']!.actions, ['view', 'create', 'edit', 'delete']);
    assert.equal(ops['ops.logs']!.level, 'edit');
  });

  it('leaves a top-level area none when nothing sets it, and its children none after it', () => {
    const tree = effectivePermissions(catalogue, member({ 'analytics.csat': 'read' }));
    assert.deepEqual(tree.flows, { level: 'none', actions: [], reason: 'no permission set' });
    assert.equal(tree['analytics.kpis']!.reason, 'parent Analytics (analytics) is none');
    assert.deepEqual(tree['analytics.csat'], {
      level: 'none',
      actions: [],
      reason: 'parent Analytics (analytics) is none',
    });
  });

  it('keeps explicit action sets as given, their level the highest preset inside', () => {
    const tree = effectivePermissions(catalogue, member({ knowledge: ['view', 'edit'] }));
    assert.deepEqual(tree.knowledge, { level: 'read', actions: ['view', 'edit'], reason: 'own setting' });
    assert.deepEqual(tree['knowledge.faqs']!.actions, ['view', 'edit']);
  });

  describe('with a role template', () => {
    it('lays the user’s own sub-section setting over the template', () => {
      const tree = effectivePermissions(
        catalogue,
        member({ 'knowledge.faqs': 'read' }, support({ knowledge: 'edit' })),
      );
      assert.deepEqual(tree.knowledge, {
        level: 'edit',
        actions: ['view', 'create', 'edit', 'delete'],
        reason: 'role template "Support"',
      });
      assert.deepEqual(tree['knowledge.faqs'], { level: 'read', actions: ['view'], reason: 'own setting' });
      assert.deepEqual(tree['knowledge.sources'], {
        level: 'edit',
        actions: ['view', 'create', 'edit', 'delete'],
        reason: 'inherited from parent Knowledge (knowledge)',
      });
    });

    it('lets the user’s own parent setting override the template’s parent and the children the user left unset', () => {
      const tree = effectivePermissions(
        catalogue,
        member({ knowledge: 'read' }, support({ knowledge: 'edit', 'knowledge.faqs': 'edit' })),
      );
      assert.deepEqual(tree.knowledge, { level: 'read', actions: ['view'], reason: 'own setting' });
      assert.deepEqual(tree['knowledge.faqs'], {
        level: 'read',
        actions: ['view'],
        reason: 'inherited from parent Knowledge (knowledge)',
      });
      assert.deepEqual(all(tree, 'knowledge.'), ['read', 'read', 'read']);
    });

    it('gives none to a top-level area the template does not list', () => {
      const tree = effectivePermissions(catalogue, member({}, support({ knowledge: 'edit' })));
      assert.deepEqual(tree.flows, {
        level: 'none',
        actions: [],
        reason: 'role template "Support" does not grant this area',
      });
      assert.equal(tree['voice.numbers']!.level, 'none');
    });

    it('takes a sub-section the template sets itself from the template', () => {
      const tree = effectivePermissions(
        catalogue,
        member({}, support({ knowledge: 'edit', 'knowledge.faqs': 'read' })),
      );
      assert.deepEqual(tree['knowledge.faqs'], { level: 'read', actions: ['view'], reason: 'role template "Support"' });
    });

    it('clamps the user’s own sub-section when the template was since narrowed to none', () => {
      const tree = effectivePermissions(
        catalogue,
        member({ 'knowledge.faqs': 'edit' }, support({ knowledge: 'none' })),
      );
      assert.deepEqual(tree['knowledge.faqs'], {
        level: 'none',
        actions: [],
        reason: 'parent Knowledge (knowledge) is none',
      });
    });

    it('clamps the user’s own sub-section to a narrower template parent, saying so', () => {
      const tree = effectivePermissions(
        catalogue,
        member({ 'knowledge.faqs': 'edit' }, support({ knowledge: 'read' })),
      );
      assert.deepEqual(tree['knowledge.faqs'], {
        level: 'read',
        actions: ['view'],
        reason: 'own setting, limited by parent Knowledge (knowledge) at read',
      });
    });
  });

  it('grants an admin every action of every area', () => {
    const tree = effectivePermissions(catalogue, { role: 'admin', status: 'active', own: { knowledge: 'none' } });
    assert.deepEqual(tree.knowledge, {
      level: 'edit',
      actions: ['view', 'create', 'edit', 'delete'],
      reason: 'admin role grants everything',
    });
    assert.deepEqual(tree.integrations!.actions, ['view', 'create', 'edit', 'delete', 'manage']);
    assert.ok(Object.values(tree).every((e) => e.level === 'edit' || e.level === 'manage'));
    assert.deepEqual(all(tree, 'account'), ['manage', 'manage', 'manage', 'manage', 'manage', 'manage']);
  });

  it('gives no access to a user who is not active, admin or not', () => {
    const reasons = {
      invited: 'user is invited: no access until the invitation is accepted',
      suspended: 'user is suspended: no access until reactivated',
      deleted: 'no such user: never existed or deleted',
    } as const;
    for (const [status, reason] of Object.entries(reasons) as [keyof typeof reasons, string][]) {
      for (const role of ['admin', 'member'] as const) {
        const tree = effectivePermissions(catalogue, {
          role,
          status,
          own: { knowledge: 'edit' },
          template: support({ flows: 'edit' }),
        });
        assert.ok(
          Object.values(tree).every((e) => e.level === 'none' && e.actions.length === 0 && e.reason === reason),
          `${role} ${status}`,
        );
      }
    }
  });
});

describe('checkArea', () => {
  const tree = effectivePermissions(
    catalogue,
    member({ knowledge: 'none', 'knowledge.faqs': 'edit', flows: 'read', 'account.users': 'edit', account: 'edit' }),
  );
  const check = (area: string, action: Action) => checkArea(tree, area, action);

  it('allows an action the area has, saying where it comes from', () => {
    assert.deepEqual(check('flows', 'view'), { allowed: true, reason: 'view on flows: allowed: own setting' });
    assert.deepEqual(check('account.users', 'delete'), {
      allowed: true,
      reason: 'delete on account.users: allowed: own setting',
    });
  });

  it('denies an action the area lacks, saying why', () => {
    assert.deepEqual(check('knowledge.faqs', 'edit'), {
      allowed: false,
      reason: 'edit on knowledge.faqs: denied: parent Knowledge (knowledge) is none',
    });
    assert.deepEqual(check('flows', 'edit'), {
      allowed: false,
      reason: 'edit on flows: denied: flows is read (own setting)',
    });
    assert.equal(check('account.users', 'manage').allowed, false);
  });

  it('refuses an area the catalogue does not have', () => {
    assert.throws(
      () => check('sales', 'view'),
      (err: unknown) => err instanceof Error && 'status' in err && err.status === 404,
    );
  });
});
