// Desktop notifications for mentions and private messages, once the user has allowed them.

export function supported() {
  return "Notification" in window;
}

export function permission() {
  return supported() ? Notification.permission : "unsupported";
}

/** Ask, if nobody has yet (browsers only ask in answer to a click or a key: call it from one). */
export async function ask() {
  if (!supported() || Notification.permission !== "default") return permission();
  try {
    return await Notification.requestPermission();
  } catch {
    return permission();
  }
}

export function notify(title, body, tag, onClick) {
  if (permission() !== "granted") return null;
  try {
    const n = new Notification(title, { body, tag });
    n.onclick = () => {
      window.focus();
      onClick();
      n.close();
    };
    return n;
  } catch {
    return null; // some browsers allow notifications only from a service worker
  }
}
