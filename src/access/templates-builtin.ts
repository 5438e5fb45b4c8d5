import type { AreaSettings } from './levels.js';

/**
 * Seed 002's four "common configurations", seeded into every tenant as ordinary templates
 * (editable and deletable). Areas a configuration does not list are none.
 */
export const builtinTemplates: { name: string; areas: AreaSettings }[] = [
  {
    name: 'Read-only reviewer',
    areas: {
      analytics: 'read',
      behavior: 'read',
      knowledge: 'read',
      voice: 'read',
      messaging: 'read',
      deployments: 'read',
      account: 'read',
    },
  },
  {
    name: 'Knowledge editor',
    areas: {
      analytics: 'read',
      knowledge: 'edit',
      behavior: 'read',
      voice: 'read',
      messaging: 'read',
      deployments: 'none',
      account: 'none',
    },
  },
  {
    name: 'Full developer',
    areas: {
      analytics: 'edit',
      behavior: 'edit',
      knowledge: 'edit',
      flows: 'edit',
      tools: 'edit',
      voice: 'edit',
      messaging: 'edit',
      integrations: 'edit',
      deployments: 'edit',
      account: 'read',
    },
  },
  {
    name: 'Operations manager',
    areas: {
      analytics: 'edit',
      behavior: 'read',
      knowledge: 'read',
      voice: 'read',
      messaging: 'read',
      deployments: 'edit',
      account: 'edit',
    },
  },
];
