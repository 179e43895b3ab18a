"""The customer's language on documents and mail: phrases, meter names in words, Babel's number/date/money formats.

A customer card's ``language`` (en, de, fr, tr, zh-Hans; a region such as de-AT is allowed) picks the
phrases and the locale; anything else falls back to English, so an invoice is never refused for it.
"""

# ruff: noqa: RUF001 - full-width Chinese punctuation is correct in Chinese text

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Final

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

LANGUAGES: Final = ("en", "de", "fr", "tr", "zh-Hans")
_LOCALES: Final = {"en": "en_GB", "de": "de_DE", "fr": "fr_FR", "tr": "tr_TR", "zh-Hans": "zh_Hans_CN"}

_PHRASES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "from": "From",
        "bill_to": "Bill to",
        "vat": "VAT",
        "invoice": "Invoice",
        "credit_note": "Credit note",
        "draft": "DRAFT {kind} (not numbered)",
        "customer": "Customer",
        "period": "Period",
        "issue_date": "Issue date",
        "due_date": "Due date",
        "currency": "Currency",
        "status": "Status",
        "credits": "Credits invoice",
        "description": "Description",
        "start": "Start read",
        "end": "End read",
        "qty": "Qty",
        "amount": "Amount",
        "net": "Net",
        "tax_on": "Tax {rate} % on {taxable}",
        "total": "Total {currency}",
        "not_reported": "meter not reported",
        "no_read": "no read",
        "reset": "reset",
        "first_read": "first read",
        "segment": "seg. {n}",
        "usage": "{pages} pages, {included} included",
        "usage_all": "{pages} pages",
        "note_estimated": "{mark} / ~: estimated read (no reading within the window); corrected on a later invoice.",
        "note_first": "first read: the device's first reading after the period began (installed then).",
        "note_reset": "reset: the counter was reset and counts again from the value shown; one row per segment.",
        "note_held": "{mark}: readings under review when this was issued.",
        "note_pay": "Please pay by bank transfer to {bank}, quoting {number}.",
        "note_terms": "Payable within {days} days.",
        "mail_invoice_subject": "{seller}: invoice {number}",
        "mail_credit_subject": "{seller}: credit note {number}",
        "mail_greeting": "Dear {name},",
        "mail_invoice_body": "please find attached {kind} {number} for {period} of {total}, due on {due}. "
        "The XML file is the same invoice for your accounting software (UBL, EN 16931).",
        "mail_regards": "Kind regards",
        "mail_reminder_subject": "{seller}: payment reminder for invoice {number}",
        "draft_status": "draft",
        "finalized_status": "final",
        "voided_status": "voided",
        "base_fee": "Base fee",
        "meter.mono": "Mono pages",
        "meter.color": "Colour pages",
        "meter.total": "All pages",
        "meter.print_mono": "Print pages, mono",
        "meter.print_color": "Print pages, colour",
        "meter.copy_mono": "Copies, mono",
        "meter.copy_color": "Copies, colour",
        "price": "{pages} pages × {price}",
        "tier_range": "pages {first}–{last}",
        "tier_open": "from page {first}",
        "tier_volume": "{range}: this price for every page",
        "cost_centre": "cost centre {code}",
    },
    "de": {
        "from": "Von",
        "bill_to": "Rechnung an",
        "vat": "USt-IdNr.",
        "invoice": "Rechnung",
        "credit_note": "Gutschrift",
        "draft": "ENTWURF {kind} (ohne Nummer)",
        "customer": "Kunde",
        "period": "Zeitraum",
        "issue_date": "Rechnungsdatum",
        "due_date": "Fällig am",
        "currency": "Währung",
        "status": "Status",
        "credits": "Gutschrift zu Rechnung",
        "description": "Beschreibung",
        "start": "Anfangsstand",
        "end": "Endstand",
        "qty": "Menge",
        "amount": "Betrag",
        "net": "Netto",
        "tax_on": "USt. {rate} % auf {taxable}",
        "total": "Gesamt {currency}",
        "not_reported": "Zähler nicht gemeldet",
        "no_read": "kein Stand",
        "reset": "zurückgesetzt",
        "first_read": "erster Stand",
        "segment": "Abschn. {n}",
        "usage": "{pages} Seiten, {included} inklusive",
        "usage_all": "{pages} Seiten",
        "note_estimated": "{mark} / ~: geschätzter Stand (kein Zählerstand im Zeitfenster); "
        "wird auf einer späteren Rechnung berichtigt.",
        "note_first": "erster Stand: der erste Zählerstand des Geräts nach Beginn des Zeitraums (dann aufgestellt).",
        "note_reset": "zurückgesetzt: der Zähler wurde zurückgesetzt und zählt ab dem gezeigten Wert; "
        "eine Zeile je Abschnitt.",
        "note_held": "{mark}: Zählerstände bei Rechnungsstellung in Prüfung.",
        "note_pay": "Bitte überweisen Sie an {bank} mit dem Verwendungszweck {number}.",
        "note_terms": "Zahlbar innerhalb von {days} Tagen.",
        "mail_invoice_subject": "{seller}: Rechnung {number}",
        "mail_credit_subject": "{seller}: Gutschrift {number}",
        "mail_greeting": "Guten Tag {name},",
        "mail_invoice_body": "anbei erhalten Sie {kind} {number} für {period} über {total}, fällig am {due}. "
        "Die XML-Datei ist dieselbe Rechnung für Ihre Buchhaltungssoftware (UBL, EN 16931).",
        "mail_regards": "Mit freundlichen Grüßen",
        "mail_reminder_subject": "{seller}: Zahlungserinnerung zu Rechnung {number}",
        "draft_status": "Entwurf",
        "finalized_status": "endgültig",
        "voided_status": "storniert",
        "base_fee": "Grundgebühr",
        "meter.mono": "Schwarzweiß-Seiten",
        "meter.color": "Farbseiten",
        "meter.total": "Seiten gesamt",
        "meter.print_mono": "Druckseiten Schwarzweiß",
        "meter.print_color": "Druckseiten Farbe",
        "meter.copy_mono": "Kopien Schwarzweiß",
        "meter.copy_color": "Kopien Farbe",
        "price": "{pages} Seiten × {price}",
        "tier_range": "Seiten {first}–{last}",
        "tier_open": "ab Seite {first}",
        "tier_volume": "{range}: dieser Preis für jede Seite",
        "cost_centre": "Kostenstelle {code}",
    },
    "fr": {
        "from": "De",
        "bill_to": "Facturé à",
        "vat": "N° TVA",
        "invoice": "Facture",
        "credit_note": "Avoir",
        "draft": "BROUILLON {kind} (non numéroté)",
        "customer": "Client",
        "period": "Période",
        "issue_date": "Date d'émission",
        "due_date": "Échéance",
        "currency": "Devise",
        "status": "Statut",
        "credits": "Avoir sur la facture",
        "description": "Désignation",
        "start": "Relevé initial",
        "end": "Relevé final",
        "qty": "Qté",
        "amount": "Montant",
        "net": "Total HT",
        "tax_on": "TVA {rate} % sur {taxable}",
        "total": "Total TTC {currency}",
        "not_reported": "compteur non transmis",
        "no_read": "pas de relevé",
        "reset": "remis à zéro",
        "first_read": "premier relevé",
        "segment": "seg. {n}",
        "usage": "{pages} pages, {included} incluses",
        "usage_all": "{pages} pages",
        "note_estimated": "{mark} / ~ : relevé estimé (aucun relevé dans la fenêtre) ; corrigé sur une facture "
        "ultérieure.",
        "note_first": "premier relevé : le premier relevé de l'appareil après le début de la période (installé alors).",
        "note_reset": "remis à zéro : le compteur a été remis à zéro et repart de la valeur indiquée ; "
        "une ligne par segment.",
        "note_held": "{mark} : relevés en cours de vérification à l'émission.",
        "note_pay": "Merci de régler par virement sur {bank} en indiquant {number}.",
        "note_terms": "Payable sous {days} jours.",
        "mail_invoice_subject": "{seller} : facture {number}",
        "mail_credit_subject": "{seller} : avoir {number}",
        "mail_greeting": "Bonjour {name},",
        "mail_invoice_body": "veuillez trouver ci-joint {kind} {number} pour {period} d'un montant de {total}, "
        "à régler le {due}. Le fichier XML est la même facture pour votre logiciel comptable "
        "(UBL, EN 16931).",
        "mail_regards": "Cordialement",
        "mail_reminder_subject": "{seller} : rappel de paiement pour la facture {number}",
        "draft_status": "brouillon",
        "finalized_status": "définitive",
        "voided_status": "annulée",
        "base_fee": "Forfait de base",
        "meter.mono": "Pages noir et blanc",
        "meter.color": "Pages couleur",
        "meter.total": "Pages au total",
        "meter.print_mono": "Pages imprimées noir et blanc",
        "meter.print_color": "Pages imprimées couleur",
        "meter.copy_mono": "Copies noir et blanc",
        "meter.copy_color": "Copies couleur",
        "price": "{pages} pages × {price}",
        "tier_range": "pages {first} à {last}",
        "tier_open": "à partir de la page {first}",
        "tier_volume": "{range} : ce prix pour chaque page",
        "cost_centre": "centre de coûts {code}",
    },
    "tr": {
        "from": "Gönderen",
        "bill_to": "Fatura adresi",
        "vat": "Vergi No",
        "invoice": "Fatura",
        "credit_note": "İade faturası",
        "draft": "TASLAK {kind} (numarasız)",
        "customer": "Müşteri",
        "period": "Dönem",
        "issue_date": "Düzenleme tarihi",
        "due_date": "Son ödeme tarihi",
        "currency": "Para birimi",
        "status": "Durum",
        "credits": "İade edilen fatura",
        "description": "Açıklama",
        "start": "İlk sayaç",
        "end": "Son sayaç",
        "qty": "Miktar",
        "amount": "Tutar",
        "net": "Ara toplam",
        "tax_on": "KDV %{rate}, matrah {taxable}",
        "total": "Genel toplam {currency}",
        "not_reported": "sayaç bildirilmedi",
        "no_read": "okuma yok",
        "reset": "sıfırlandı",
        "first_read": "ilk okuma",
        "segment": "böl. {n}",
        "usage": "{pages} sayfa, {included} dahil",
        "usage_all": "{pages} sayfa",
        "note_estimated": "{mark} / ~: tahmini okuma (zaman aralığında okuma yok); sonraki faturada düzeltilir.",
        "note_first": "ilk okuma: cihazın dönem başladıktan sonraki ilk okuması (o zaman kuruldu).",
        "note_reset": "sıfırlandı: sayaç sıfırlandı ve gösterilen değerden saymaya devam ediyor; her bölüm bir satır.",
        "note_held": "{mark}: fatura düzenlenirken incelenen okumalar.",
        "note_pay": "Lütfen {number} açıklamasıyla {bank} hesabına havale ediniz.",
        "note_terms": "{days} gün içinde ödenecektir.",
        "mail_invoice_subject": "{seller}: {number} numaralı fatura",
        "mail_credit_subject": "{seller}: {number} numaralı iade faturası",
        "mail_greeting": "Sayın {name},",
        "mail_invoice_body": "{period} dönemine ait {total} tutarındaki {number} numaralı {kind} ektedir; son ödeme "
        "tarihi {due}. XML dosyası, muhasebe yazılımınız için aynı faturadır (UBL, EN 16931).",
        "mail_regards": "Saygılarımızla",
        "mail_reminder_subject": "{seller}: {number} numaralı fatura için ödeme hatırlatması",
        "draft_status": "taslak",
        "finalized_status": "kesin",
        "voided_status": "iptal",
        "base_fee": "Sabit ücret",
        "meter.mono": "Siyah-beyaz sayfa",
        "meter.color": "Renkli sayfa",
        "meter.total": "Toplam sayfa",
        "meter.print_mono": "Siyah-beyaz baskı",
        "meter.print_color": "Renkli baskı",
        "meter.copy_mono": "Siyah-beyaz kopya",
        "meter.copy_color": "Renkli kopya",
        "price": "{pages} sayfa × {price}",
        "tier_range": "{first}–{last}. sayfalar",
        "tier_open": "{first}. sayfadan itibaren",
        "tier_volume": "{range}: her sayfa için bu fiyat",
        "cost_centre": "masraf merkezi {code}",
    },
    "zh-Hans": {
        "from": "开票方",
        "bill_to": "收票方",
        "vat": "税号",
        "invoice": "发票",
        "credit_note": "红字发票",
        "draft": "{kind}草稿（未编号）",
        "customer": "客户",
        "period": "计费期间",
        "issue_date": "开票日期",
        "due_date": "付款截止日",
        "currency": "币种",
        "status": "状态",
        "credits": "冲销发票",
        "description": "项目",
        "start": "期初读数",
        "end": "期末读数",
        "qty": "数量",
        "amount": "金额",
        "net": "不含税金额",
        "tax_on": "税率 {rate}%，计税金额 {taxable}",
        "total": "价税合计 {currency}",
        "not_reported": "未上报该计数器",
        "no_read": "无读数",
        "reset": "已清零",
        "first_read": "首次读数",
        "segment": "第{n}段",
        "usage": "{pages} 页，含 {included} 页",
        "usage_all": "{pages} 页",
        "note_estimated": "{mark} / ~：估算读数（时间窗口内无读数）；将在后续发票中更正。",
        "note_first": "首次读数：计费期间开始后设备的第一个读数（当时安装）。",
        "note_reset": "已清零：计数器已清零并从所示数值重新计数；每段一行。",
        "note_held": "{mark}：开票时读数正在审核中。",
        "note_pay": "请通过银行转账支付至 {bank}，并注明 {number}。",
        "note_terms": "请于 {days} 天内付款。",
        "mail_invoice_subject": "{seller}：发票 {number}",
        "mail_credit_subject": "{seller}：红字发票 {number}",
        "mail_greeting": "{name}，您好：",
        "mail_invoice_body": "附件为{period}的{kind} {number}，金额 {total}，付款截止日 {due}。"
        "XML 文件是供您的财务软件使用的同一张发票（UBL，EN 16931）。",
        "mail_regards": "此致敬礼",
        "mail_reminder_subject": "{seller}：发票 {number} 付款提醒",
        "draft_status": "草稿",
        "finalized_status": "正式",
        "voided_status": "已作废",
        "base_fee": "基本费",
        "meter.mono": "黑白页数",
        "meter.color": "彩色页数",
        "meter.total": "总页数",
        "meter.print_mono": "黑白打印页数",
        "meter.print_color": "彩色打印页数",
        "meter.copy_mono": "黑白复印页数",
        "meter.copy_color": "彩色复印页数",
        "price": "{pages} 页 × {price}",
        "tier_range": "第 {first}–{last} 页",
        "tier_open": "第 {first} 页起",
        "tier_volume": "{range}：每页均按此价",
        "cost_centre": "成本中心 {code}",
    },
}


# The portal's mails: invitations, password resets, change requests decided.
_PORTAL_PHRASES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "mail_invite_subject": "{seller}: your portal account",
        "mail_invite_body": "{seller} has opened a portal account for you at {customer}: your devices, invoices and "
        "balance, meter readings to send and your company details to keep up to date. Choose your password with "
        "this link; it works once, for {hours} hours:",
        "mail_reset_subject": "{seller}: choose a new portal password",
        "mail_reset_body": "a new password was asked for your portal account at {customer}. "
        "Choose it with this link; it works once, for {hours} hours:",
        "mail_change_subject": "{seller}: your details were changed",
        "mail_change_body": "the change you asked for to the details {seller} keeps for {customer} is done:",
        "mail_reject_subject": "{seller}: your change request was not accepted",
        "mail_reject_body": "we could not make the change you asked for to the details of {customer}, because:",
        "mail_not_you": "If you did not ask for this, please reply to {email}.",
        "field.legal_name": "Company name",
        "field.trade_name": "Trading name",
        "field.tax_id": "Tax number",
        "field.electronic_address": "E-invoicing address",
        "field.address": "Address",
        "field.contacts": "Contacts",
        "field.payment_method": "Payment method",
    },
    "de": {
        "mail_invite_subject": "{seller}: Ihr Portalzugang",
        "mail_invite_body": "{seller} hat für Sie einen Portalzugang bei {customer} eingerichtet: Ihre Geräte, "
        "Rechnungen und Ihr Kontostand, Zählerstände melden und Ihre Firmendaten aktuell halten. Wählen Sie Ihr "
        "Passwort über diesen Link; er gilt einmal, {hours} Stunden lang:",
        "mail_reset_subject": "{seller}: neues Portalpasswort wählen",
        "mail_reset_body": "für Ihren Portalzugang bei {customer} wurde ein neues Passwort angefordert. "
        "Wählen Sie es über diesen Link; er gilt einmal, {hours} Stunden lang:",
        "mail_change_subject": "{seller}: Ihre Daten wurden geändert",
        "mail_change_body": "die gewünschte Änderung der Daten, die {seller} zu {customer} führt, ist erledigt:",
        "mail_reject_subject": "{seller}: Ihre Änderung wurde nicht übernommen",
        "mail_reject_body": "die gewünschte Änderung der Daten von {customer} konnten wir nicht übernehmen. Der Grund:",
        "mail_not_you": "Falls Sie das nicht veranlasst haben, antworten Sie bitte an {email}.",
        "field.legal_name": "Firmenname",
        "field.trade_name": "Handelsname",
        "field.tax_id": "Steuernummer",
        "field.electronic_address": "E-Rechnungsadresse",
        "field.address": "Anschrift",
        "field.contacts": "Ansprechpartner",
        "field.payment_method": "Zahlungsart",
    },
    "fr": {
        "mail_invite_subject": "{seller} : votre compte sur le portail",
        "mail_invite_body": "{seller} vous a ouvert un compte sur le portail pour {customer} : vos appareils, "
        "factures et solde, l'envoi de relevés de compteur et la mise à jour de vos coordonnées. Choisissez votre "
        "mot de passe avec ce lien ; il fonctionne une fois, pendant {hours} heures :",
        "mail_reset_subject": "{seller} : choisissez un nouveau mot de passe",
        "mail_reset_body": "un nouveau mot de passe a été demandé pour votre compte du portail pour {customer}. "
        "Choisissez-le avec ce lien ; il fonctionne une fois, pendant {hours} heures :",
        "mail_change_subject": "{seller} : vos coordonnées ont été modifiées",
        "mail_change_body": "la modification demandée des données que {seller} tient pour {customer} est faite :",
        "mail_reject_subject": "{seller} : votre demande de modification n'a pas été acceptée",
        "mail_reject_body": "nous n'avons pas pu faire la modification demandée des données de {customer}, car :",
        "mail_not_you": "Si vous n'êtes pas à l'origine de cette demande, répondez à {email}.",
        "field.legal_name": "Raison sociale",
        "field.trade_name": "Nom commercial",
        "field.tax_id": "Numéro fiscal",
        "field.electronic_address": "Adresse de facturation électronique",
        "field.address": "Adresse",
        "field.contacts": "Contacts",
        "field.payment_method": "Mode de paiement",
    },
    "tr": {
        "mail_invite_subject": "{seller}: portal hesabınız",
        "mail_invite_body": "{seller}, {customer} için size bir portal hesabı açtı: cihazlarınız, faturalarınız ve "
        "bakiyeniz, sayaç okumaları göndermek ve şirket bilgilerinizi güncel tutmak için. Şifrenizi bu bağlantıyla "
        "belirleyin; bağlantı bir kez ve {hours} saat geçerlidir:",
        "mail_reset_subject": "{seller}: yeni portal şifresi belirleyin",
        "mail_reset_body": "{customer} portal hesabınız için yeni bir şifre istendi. Şifreyi bu bağlantıyla "
        "belirleyin; bağlantı bir kez ve {hours} saat geçerlidir:",
        "mail_change_subject": "{seller}: bilgileriniz değiştirildi",
        "mail_change_body": "{seller} tarafından {customer} için tutulan bilgilerde istediğiniz değişiklik yapıldı:",
        "mail_reject_subject": "{seller}: değişiklik talebiniz kabul edilmedi",
        "mail_reject_body": "{customer} bilgilerinde istediğiniz değişikliği yapamadık. Nedeni:",
        "mail_not_you": "Bunu siz istemediyseniz lütfen {email} adresine yanıt verin.",
        "field.legal_name": "Şirket unvanı",
        "field.trade_name": "Ticari ad",
        "field.tax_id": "Vergi numarası",
        "field.electronic_address": "E-fatura adresi",
        "field.address": "Adres",
        "field.contacts": "Yetkililer",
        "field.payment_method": "Ödeme şekli",
    },
    "zh-Hans": {
        "mail_invite_subject": "{seller}：您的客户门户账户",
        "mail_invite_body": "{seller} 已为您开通 {customer} 的客户门户账户：查看设备、发票和余额，提交抄表读数，"
        "并保持公司资料最新。请通过此链接设置密码；链接只能使用一次，{hours} 小时内有效：",
        "mail_reset_subject": "{seller}：设置新的门户密码",
        "mail_reset_body": "有人为您在 {customer} 的门户账户申请了新密码。请通过此链接设置；链接只能使用一次，"
        "{hours} 小时内有效：",
        "mail_change_subject": "{seller}：您的资料已更改",
        "mail_change_body": "您申请对 {seller} 保存的 {customer} 资料所做的更改已完成：",
        "mail_reject_subject": "{seller}：您的更改申请未被接受",
        "mail_reject_body": "我们无法按您的申请更改 {customer} 的资料，原因如下：",
        "mail_not_you": "如果这不是您本人的申请，请回复 {email}。",
        "field.legal_name": "公司名称",
        "field.trade_name": "商号",
        "field.tax_id": "税号",
        "field.electronic_address": "电子发票地址",
        "field.address": "地址",
        "field.contacts": "联系人",
        "field.payment_method": "付款方式",
    },
}
for _language, _phrases in _PORTAL_PHRASES.items():
    _PHRASES[_language].update(_phrases)


def language_of(tag: str | None) -> str:
    """A card's language tag as one of LANGUAGES: "de-AT" -> "de", "zh" -> "zh-Hans", unknown -> "en"."""
    if not tag:
        return "en"
    if tag in _PHRASES:
        return tag
    primary = tag.split("-")[0].lower()
    return "zh-Hans" if primary == "zh" else primary if primary in _PHRASES else "en"


class Words:
    """Phrases and formats in one language."""

    def __init__(self, tag: str | None) -> None:
        self.language = language_of(tag)
        self.locale = _LOCALES[self.language]
        self._phrases = _PHRASES[self.language]

    def __call__(self, key: str, **values: object) -> str:
        return self._phrases.get(key, _PHRASES["en"][key]).format(**values)

    def field(self, name: str) -> str:
        """A customer card's field in words ("Tax number"); one without a translation keeps its name."""
        return self._phrases.get(f"field.{name}") or _PHRASES["en"].get(f"field.{name}") or name

    def meter(self, meter: str) -> str:
        """A meter in words ("Mono pages"); a meter without a translation keeps its name, spaced and capitalised."""
        return self._phrases.get(f"meter.{meter}") or meter.replace("_", " ").capitalize()

    def number(self, value: Decimal | int) -> str:
        return _printable(format_decimal(value, locale=self.locale, decimal_quantization=False))

    def money(self, amount: Decimal) -> str:
        """Two decimals for whole cents, more when a unit price has them; no currency sign (the column says it)."""
        exponent = amount.as_tuple().exponent
        places = max(2, -exponent) if isinstance(exponent, int) else 2
        return _printable(format_decimal(amount, format=f"#,##0.{'0' * places}", locale=self.locale))

    def unit_price(self, price: Decimal, currency: str) -> str:
        """A unit price with its currency as the locale writes money ("€0.0080", "0,0080 €"), every decimal kept."""
        exponent = price.as_tuple().exponent
        places = max(2, -exponent) if isinstance(exponent, int) else 2
        pattern = Locale.parse(self.locale).currency_formats["standard"].pattern.replace("0.00", f"0.{'0' * places}")
        return _printable(format_currency(price, currency, format=pattern, locale=self.locale, currency_digits=False))

    def money_with_currency(self, amount: Decimal, currency: str) -> str:
        return f"{self.money(amount)} {currency}"

    def date(self, day: date | None) -> str:
        return format_date(day, format="medium", locale=self.locale) if day else "-"


def _printable(text: str) -> str:
    """French groups digits with a narrow no-break space (U+202F), which the PDF font lacks: a plain one instead."""
    return text.replace("\u202f", "\u00a0")
