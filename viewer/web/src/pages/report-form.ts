// The structured report: a template (JSON Schema) drawn as a form, plus findings, impression
// and the critical-result flag. Field titles come from the template itself (the data).
import { h } from '../dom';
import { locale, t } from '../i18n';

export interface Template {
  id: string;
  title: string;
  title_en: string | null;
  modalities: string[];
  body_parts: string[];
  schema: { properties: Record<string, FieldSchema> };
}

interface FieldSchema {
  title?: string;
  type?: string;
  enum?: string[];
  'x-enum-titles'?: string[];
  'x-unit'?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
}

export interface ReportContent {
  template_id: string;
  fields: Record<string, unknown>;
  findings: string;
  impression: string;
  critical: boolean;
}

/** The template that fits a study, else the generic one. */
export function chooseTemplate(templates: Template[], modality: string | null, bodyPart: string | null): Template {
  const fits = templates.filter((tpl) => !modality || tpl.modalities.includes(modality));
  const exact = fits.find((tpl) => bodyPart && tpl.body_parts.includes(bodyPart.toUpperCase()));
  return exact ?? fits.find((tpl) => tpl.body_parts.length === 0) ?? templates.find((tpl) => tpl.id === 'generic') ?? templates[0];
}

export class ReportForm {
  readonly element: HTMLFormElement;
  private fieldsBox = h('div', { class: 'template-fields' });
  private templateSelect: HTMLSelectElement;
  private findings = h('textarea', { name: 'findings', id: 'report-findings', rows: 6 });
  private impression = h('textarea', { name: 'impression', id: 'report-impression', rows: 3 });
  private critical = h('input', { type: 'checkbox', name: 'critical', id: 'report-critical' });
  private template: Template;
  private inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();

  constructor(private templates: Template[], initial: Template) {
    this.template = initial;
    this.templateSelect = h(
      'select',
      { id: 'report-template' },
      templates.map((tpl) => h('option', { value: tpl.id }, locale() === 'en' && tpl.title_en ? tpl.title_en : tpl.title)),
    );
    this.templateSelect.value = initial.id;
    this.templateSelect.addEventListener('change', () => {
      const values = this.fieldValues();
      this.template = this.templates.find((tpl) => tpl.id === this.templateSelect.value)!;
      this.drawFields(values);
    });
    this.element = h(
      'form',
      { class: 'report-form', id: 'report-form', onsubmit: (event: Event) => event.preventDefault() },
      h('label', {}, t('report.template'), this.templateSelect),
      this.fieldsBox,
      h('label', {}, t('report.findings'), this.findings),
      h('label', {}, t('report.impression'), this.impression),
      h('label', { class: 'inline critical' }, this.critical, t('report.critical')),
    );
    this.drawFields({});
  }

  private drawFields(values: Record<string, unknown>): void {
    this.fieldsBox.replaceChildren();
    this.inputs.clear();
    for (const [name, field] of Object.entries(this.template.schema.properties ?? {})) {
      let input: HTMLInputElement | HTMLSelectElement;
      if (field.type === 'boolean') {
        input = h('input', { type: 'checkbox', name });
        (input as HTMLInputElement).checked = values[name] === true;
        this.fieldsBox.append(h('label', { class: 'inline field' }, input, field.title ?? name));
      } else {
        if (field.enum) {
          const titles = field['x-enum-titles'] ?? field.enum;
          input = h('select', { name }, h('option', { value: '' }, '—'), field.enum.map((v, i) => h('option', { value: v }, titles[i] ?? v)));
        } else if (field.type === 'number' || field.type === 'integer') {
          input = h('input', { type: 'number', name, min: field.minimum, max: field.maximum, step: field.type === 'integer' ? 1 : 'any' });
        } else {
          input = h('input', { type: 'text', name, maxlength: field.maxLength });
        }
        if (values[name] !== undefined && values[name] !== null) input.value = String(values[name]);
        this.fieldsBox.append(h('label', { class: 'field' }, h('span', {}, field.title ?? name, field['x-unit'] ? ` (${field['x-unit']})` : ''), input));
      }
      input.dataset.type = field.type ?? 'string';
      this.inputs.set(name, input);
    }
  }

  private fieldValues(): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [name, input] of this.inputs) {
      const kind = input.dataset.type;
      if (kind === 'boolean') {
        if ((input as HTMLInputElement).checked) values[name] = true;
        else values[name] = false;
      } else if (input.value !== '') {
        values[name] = kind === 'number' || kind === 'integer' ? Number(input.value) : input.value;
      }
    }
    return values;
  }

  fill(content: Partial<ReportContent>): void {
    if (content.template_id && this.templates.some((tpl) => tpl.id === content.template_id)) {
      this.templateSelect.value = content.template_id;
      this.template = this.templates.find((tpl) => tpl.id === content.template_id)!;
    }
    this.drawFields(content.fields ?? {});
    this.findings.value = content.findings ?? '';
    this.impression.value = content.impression ?? '';
    this.critical.checked = content.critical ?? false;
  }

  value(): ReportContent {
    return {
      template_id: this.template.id,
      fields: this.fieldValues(),
      findings: this.findings.value,
      impression: this.impression.value,
      critical: this.critical.checked,
    };
  }

  setReadOnly(readOnly: boolean): void {
    for (const control of this.element.querySelectorAll<HTMLInputElement>('input, select, textarea')) control.disabled = readOnly;
  }
}
