import type { Response } from 'express';
import { escapeHtml, htmlPage } from '../http/html-page.js';

/** What a person sees when a sign-in cannot go on: plain paragraphs, escaped. */
export function page(res: Response, status: number, title: string, paragraphs: string[]): void {
  htmlPage(res, status, title, paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`).join(''));
}
