import type { CatalogueInput } from './catalogue.js';

/** Seed 002's navigation areas and sub-sections, exactly as listed there. */
export const defaultCatalogue: CatalogueInput = [
  {
    label: 'Analytics',
    description: 'Conversation data and analysis tools',
    children: [
      { label: 'Conversations', description: 'Call transcripts, recordings, and review' },
      { label: 'KPIs', description: 'Custom metric definitions' },
      { label: 'Custom metrics', description: 'Post-call reporting and extraction queries' },
      { label: 'Dashboards', description: 'Standard, safety, and custom analytics dashboards' },
      { label: 'PolyScore', description: 'Automated conversation scoring' },
      { label: 'Smart Analyst', description: 'AI-powered conversation insights' },
      { label: 'Agent analysis', description: 'Per-call categorization and trends' },
      { label: 'CSAT', description: 'Customer satisfaction surveys' },
    ],
  },
  {
    label: 'Behavior',
    description: 'Agent personality, language, guardrails, and model selection',
    children: [
      { label: 'General', description: 'Agent persona, role, and rules' },
      { label: 'Language', description: 'Multilingual settings, coverage, translations' },
      { label: 'Guardrails', description: 'Safety filters and built-in guardrails' },
      { label: 'Models', description: 'Model selection (Raven, OpenAI, Bedrock, BYOM)' },
    ],
  },
  {
    label: 'Knowledge',
    description: 'FAQs, external sources, and variants',
    children: [
      { label: 'FAQs', description: 'Curated topics, sample questions, answers, actions' },
      { label: 'Sources', description: 'Connected knowledge integrations' },
      { label: 'Variants', description: 'Multi-site configurations' },
    ],
  },
  { label: 'Flows', description: 'Conversation flow design (no-code and code-based)' },
  { label: 'Tools', description: 'Custom Python functions, classes, and tool integrations' },
  { label: 'Testing', description: 'Test cases, test sets, and regression runs' },
  { label: 'Real-time config', description: 'Real-time config tools and the configuration builder' },
  {
    label: 'Voice',
    description: 'All voice channel settings',
    children: [
      { label: 'Agent', description: 'Agent voice and disclaimer' },
      { label: 'Handoffs', description: 'Transfer destinations and routing' },
      { label: 'Audio library', description: 'Pre-recorded audio assets' },
      { label: 'Numbers', description: 'Phone number management, Twilio integration' },
      {
        label: 'Advanced',
        description: 'Call settings, speech recognition, response control, stop keywords, pronunciations',
      },
    ],
  },
  {
    label: 'Messaging',
    description: 'Chat and SMS settings',
    children: [
      { label: 'Chat', description: 'Chat configuration and widget settings (these share a single permission)' },
      { label: 'SMS', description: 'Outbound SMS configuration' },
    ],
  },
  // Seed 003: manage-level access connects and disconnects integrations.
  { label: 'Integrations', description: 'API integrations, third-party service connections, and MCP', manage: true },
  {
    label: 'Deployments',
    description: 'Environment and version management',
    children: [
      { label: 'Environments', description: 'Sandbox, Pre-release, Live promotion' },
      { label: 'A/B testing', description: 'Traffic splits and experiments' },
      { label: 'Compare versions', description: 'Side-by-side diffs' },
      { label: 'Project history', description: 'Version history and comparisons' },
    ],
  },
  { label: 'Widgets', description: 'Phone and chat widget configuration, installation, and sharing' },
  {
    label: 'Account',
    description: 'Account settings, users, API keys, call data, and legal',
    manage: true,
    children: [
      { label: 'Settings', manage: true },
      { label: 'Users', manage: true },
      { label: 'API keys', manage: true },
      { label: 'Call data', manage: true },
      { label: 'Legal', manage: true },
    ],
  },
];
