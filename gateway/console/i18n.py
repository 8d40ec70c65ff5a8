"""English and Russian for the console: the English text is the key, `RU` its translation. The
language is the cookie the switch sets, else the best of `Accept-Language`, else English."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from aiohttp import web

from gateway.console.security import LANG_COOKIE

Lang = Literal["en", "ru"]
LANGS: tuple[Lang, ...] = ("en", "ru")
Translate = Callable[[str], str]


def negotiate(request: web.Request) -> Lang:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGS:
        return "ru" if chosen == "ru" else "en"
    return from_accept_language(request.headers.get("Accept-Language", ""))


def from_accept_language(header: str) -> Lang:
    """The language of the highest quality among ours (ties: the first listed); English otherwise."""
    best: tuple[float, Lang] | None = None
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, "ru" if primary == "ru" else "en")
    return best[1] if best else "en"


def translator(lang: Lang) -> Translate:
    if lang == "ru":
        return lambda text: RU.get(text, text)
    return lambda text: text


RU: dict[str, str] = {
    # frame
    "TokenHub console": "Консоль TokenHub",
    "Skip to content": "Перейти к содержимому",
    "Main navigation": "Основная навигация",
    "Overview": "Обзор",
    "Users": "Пользователи",
    "Tokens": "Токены",
    "Apps": "Приложения",
    "Vouchers": "Ваучеры",
    "Audit": "Аудит",
    "Sign out": "Выйти",
    "Signed in as": "Вы вошли как",
    "Language": "Язык",
    "Something went wrong": "Что-то пошло не так",
    "Back to the overview": "Вернуться к обзору",
    "The form has expired. Reload the page and try again.": "Форма устарела. Обновите страницу и повторите.",
    "Page not found": "Страница не найдена",
    "Invalid input": "Неверные данные",
    "Not allowed": "Нет прав",
    "Conflict": "Конфликт",
    "Not found": "Не найдено",
    "Done.": "Готово.",
    "Filter": "Фильтр",
    "Any": "Любой",
    "Next page": "Следующая страница",
    "First page": "Первая страница",
    "Nothing found.": "Ничего не найдено.",
    "Yes": "Да",
    "No": "Нет",
    "Save": "Сохранить",
    "Create": "Создать",
    "Actions": "Действия",
    "Select": "Выбрать",
    "Select all": "Выбрать все",
    "never": "никогда",
    "none": "нет",
    "Shown once": "Показывается один раз",
    "Copy it now: it will not be shown again.": "Скопируйте сейчас: больше он показан не будет.",
    # sign-in
    "Sign in": "Войти",
    "Username": "Имя пользователя",
    "Password": "Пароль",
    "Wrong username or password.": "Неверное имя пользователя или пароль.",
    "Too many failed attempts. Try again later.": "Слишком много неудачных попыток. Повторите позже.",
    "The service is unavailable. Try again later.": "Сервис недоступен. Повторите позже.",
    "Your session has ended. Sign in again.": "Сеанс завершён. Войдите снова.",
    # overview
    "Tokens by kind and status": "Токены по видам и состояниям",
    "Kind": "Вид",
    "Status": "Состояние",
    "Count": "Количество",
    "Last 24 hours": "Последние 24 часа",
    "Issued": "Выдано",
    "Failed logins": "Неудачные входы",
    "Issuance, verifications and failed logins over the last 24 hours": (
        "Выдача, проверки и неудачные входы за последние 24 часа"
    ),
    "Verifications (accepted)": "Проверки (приняты)",
    "refused": "отклонено",
    "Sweeper's last pass": "Последний проход уборщика",
    "Total": "Всего",
    # users
    "Search": "Поиск",
    "Role": "Роль",
    "E-mail": "Эл. почта",
    "Parent": "Родитель",
    "Create a user": "Создать пользователя",
    "Leave empty to generate one": "Оставьте пустым, чтобы создать автоматически",
    "Change role": "Сменить роль",
    "Disable": "Отключить",
    "Enable": "Включить",
    "Revoke everything": "Отозвать всё",
    "Reset password": "Сбросить пароль",
    "User created": "Пользователь создан",
    "New password": "Новый пароль",
    "The password of": "Пароль пользователя",
    "Revoked": "Отозвано",
    "Zabbix tokens": "токенов Zabbix",
    "Wialon tokens": "токенов Wialon",
    "API keys": "API-ключей",
    "Wialon tree": "Дерево Wialon",
    "active": "активен",
    "disabled": "отключён",
    "super_admin": "суперадминистратор",
    "admin": "администратор",
    "user": "пользователь",
    "guest": "гость",
    # tokens
    "Owner": "Владелец",
    "Name": "Название",
    "Created": "Создан",
    "Last used": "Последнее использование",
    "Expires": "Истекает",
    "Revoke selected": "Отозвать выбранные",
    "Delete selected": "Удалить выбранные",
    "Owner id": "ID владельца",
    "Expires before": "Истекает до",
    "pending": "ожидает",
    "expired": "истёк",
    "used": "использован",
    "annulled": "аннулирован",
    "deleted": "удалён",
    "zabbix": "Zabbix",
    "wialon": "Wialon",
    "voucher": "ваучер",
    "Acted on": "Обработано",
    "Not found or out of reach": "Не найдено или недоступно",
    "Select at least one.": "Выберите хотя бы один.",
    # apps
    "App id": "ID приложения",
    "Daily quota": "Дневная квота",
    "Access token lifetime (s)": "Время жизни access-токена (с)",
    "Refresh token lifetime (s)": "Время жизни refresh-токена (с)",
    "Create an app": "Создать приложение",
    "Edit": "Изменить",
    "Today's usage": "Использование сегодня",
    "Used": "Использовано",
    "Refused": "Отказано",
    "Account": "Учётная запись",
    "No use today.": "Сегодня не использовалось.",
    "Usage": "Использование",
    # vouchers
    "Create vouchers": "Создать ваучеры",
    "How many": "Сколько",
    "Multi-use": "Многоразовый",
    "Lifetime (s, 0 = none)": "Срок действия (с, 0 = без ограничения)",
    "Customer id (u_id)": "ID клиента (u_id)",
    "Code": "Код",
    "Used at": "Использован",
    "Annulled at": "Аннулирован",
    "Expires at": "Истекает",
    "Lifetime": "Срок действия",
    "Annul selected": "Аннулировать выбранные",
    "Code (exact)": "Код (точно)",
    "With": "С",
    "Without": "Без",
    "Multi-use vouchers": "Многоразовые",
    "With lifetime": "Со сроком действия",
    "Print": "Печать",
    "Voucher sheet": "Лист ваучеров",
    "Wi-Fi voucher": "Ваучер Wi-Fi",
    "Valid for": "Действует",
    "No time limit": "Без ограничения по времени",
    "from first use": "с первого использования",
    "single use": "одноразовый",
    "multi-use": "многоразовый",
    "These codes are shown once: print the sheet now.": "Коды показываются один раз: распечатайте лист сейчас.",
    "d": "д",
    "h": "ч",
    "min": "мин",
    "s": "с",
    "Back to vouchers": "К ваучерам",
    "Previous page": "Предыдущая страница",
    # audit
    "Event": "Событие",
    "Time": "Время",
    "From": "С",
    "Until": "По",
    "User id": "ID пользователя",
    "Actor": "Кто",
    "Subject": "Над кем",
    "Address": "Адрес",
    "Details": "Подробности",
    "Token": "Токен",
}
