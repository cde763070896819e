// The reading page's list of prior studies of the task's patient from any site of the consortium
// (GET /api/tasks/{id}/priors), and the reader's word on a probable one: the same person or not
// (POST .../identity, a reason optional for "not"). The list is drawn again after each decision:
// a rejected prior leaves it, a confirmed one says who confirmed it.
import { ApiError, api } from '../api';
import { clear, h } from '../dom';
import { dicomDate } from '../format';
import { t } from '../i18n';

/** A prior study of the task's patient at any site of the consortium. */
export interface Prior {
  study_uid: string;
  study_date: string | null;
  site: string;
  modalities: string;
  description: string | null;
  instances: number;
  basis: 'same_id' | 'national_id' | 'probable' | 'confirmed';
  decided_by: string | null; // who confirmed it (basis 'confirmed')
  open: boolean; // within the reader's sites already; else opening it is an audited break-glass
}

export function basisText(one: Prior): string {
  return t(`prior.basis.${one.basis}`, { reader: one.decided_by ?? '' });
}

export function failure(error: unknown): string {
  if (error instanceof ApiError && error.refusal) return t(`error.${error.refusal.code}`, error.refusal.params);
  return String(error instanceof Error ? error.message : error);
}

export class PriorsList {
  constructor(
    readonly box: HTMLElement,
    private readonly taskId: number,
    private readonly open: (one: Prior) => Promise<void>,
    private readonly say: (text: string, error?: boolean) => void,
  ) {}

  async load(): Promise<void> {
    const { priors } = await api<{ priors: Prior[] }>('GET', `/api/tasks/${this.taskId}/priors`);
    clear(this.box);
    if (!priors.length) return;
    this.box.append(h('h4', {}, t('viewer.priors')), ...priors.map((one) => this.item(one)));
  }

  private item(one: Prior): HTMLElement {
    const entry = h(
      'button',
      {
        class: `prior-study basis-${one.basis}`,
        'data-study': one.study_uid,
        'data-basis': one.basis,
        title: one.open ? null : t('prior.elsewhere'),
        onclick: () => void this.open(one).catch((e) => this.say(String(e), true)),
      },
      h('span', {}, dicomDate(one.study_date ?? '')),
      h('small', { class: 'prior-site' }, one.site),
      h('small', {}, `${one.modalities} ${one.description ?? ''} · ${t('viewer.images', { n: one.instances })}`),
      h('small', { class: `prior-basis ${one.basis}` }, basisText(one)),
    );
    if (one.basis !== 'probable' && one.basis !== 'confirmed') return entry;
    return h('div', { class: 'prior-item', 'data-study': one.study_uid }, entry, this.identity(one));
  }

  /** "Same person" (probable only) and "Not the same person", which asks for an optional reason. */
  private identity(one: Prior): HTMLElement {
    const reason = h('input', { type: 'text', class: 'prior-reason', maxlength: 500, placeholder: t('prior.reason') });
    const rejecting = h(
      'div',
      { class: 'prior-reject', hidden: true },
      reason,
      h('button', { class: 'small prior-reject-confirm', onclick: () => void this.decide(one, 'rejected', reason.value) }, t('prior.reject_confirm')),
      h('button', { class: 'small prior-reject-cancel', onclick: () => (rejecting.hidden = true) }, t('app.cancel')),
    );
    const buttons = h(
      'div',
      { class: 'prior-identity' },
      one.basis === 'probable'
        ? h('button', { class: 'small prior-same', onclick: () => void this.decide(one, 'confirmed', '') }, t('prior.same_person'))
        : null,
      h(
        'button',
        {
          class: 'small prior-not-same',
          onclick: () => {
            rejecting.hidden = false;
            reason.focus();
          },
        },
        t('prior.not_same_person'),
      ),
    );
    return h('div', {}, buttons, rejecting);
  }

  private async decide(one: Prior, decision: 'confirmed' | 'rejected', reason: string): Promise<void> {
    try {
      await api('POST', `/api/tasks/${this.taskId}/priors/${one.study_uid}/identity`, { decision, reason: reason.trim() || null });
      this.say(t(decision === 'confirmed' ? 'prior.confirmed_saved' : 'prior.rejected_saved'));
      await this.load();
    } catch (error) {
      this.say(failure(error), true);
    }
  }
}
