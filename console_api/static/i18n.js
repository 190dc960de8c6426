// The one translation table: every string the page shows, in Vietnamese and English. Ids
// from the server (kinds, zones, states, audit actions, roles, traffic levels) are looked
// up here too, never shown raw; a key missing in the current language is recorded in
// window.iocMissing (the page test fails on any) and shown as "?".
"use strict";

const TZ = "Asia/Ho_Chi_Minh";
const LABELS = {
  vi: {
    title: "Trung tâm điều hành", signIn: "Đăng nhập", username: "Tên đăng nhập",
    password: "Mật khẩu", logout: "Đăng xuất", incidents: "Sự cố", language: "Ngôn ngữ",
    district: "Huyện/thị", all: "Tất cả", severity: "Mức độ", kind: "Loại", state: "Trạng thái",
    source: "Nguồn", opened: "Bắt đầu", updated: "Cập nhật", noIncidents: "Không có sự cố nào đang mở.",
    acknowledge: "Xác nhận", assign: "Giao việc", note: "Ghi chú", resolve: "Xử lý xong",
    save: "Lưu", cancel: "Hủy", close: "Đóng", details: "Chi tiết", failed: "Không thực hiện được",
    live: "Trực tuyến", offline: "Ngoại tuyến", reconnecting: "Đang kết nối lại", noLive: "Không theo dõi trực tiếp",
    wrongLogin: "Sai tên đăng nhập hoặc mật khẩu.", expired: "Phiên đã hết hạn, hãy đăng nhập lại.",
    sound: "Âm báo", soundOn: "Bật âm báo sự cố khẩn cấp", soundOff: "Tắt âm báo",
    newCritical: "Sự cố khẩn cấp mới",
    alerts: "Cảnh báo", count: "Số lần", assignedTo: "Giao cho", acknowledgedBy: "Người xác nhận",
    notes: "Ghi chú", audit: "Nhật ký xử lý", capMessages: "Tin CAP gửi công an", noCap: "Chưa gửi công an.",
    evidence: "Ảnh hiện trường", noEvidence: "Không có ảnh hiện trường.", livePicture: "Ảnh trực tiếp",
    nearby: "Camera gần đó", selectIncident: "Chọn một sự cố trong danh sách hoặc trên bản đồ.",
    cameraWall: "Tường camera", wallOf: "Camera của", wallTop: "Camera có sự cố mới nhất",
    noPicture: "Không có ảnh", loading: "Đang tải ảnh…",
    pictureTimeout: "Camera không trả lời kịp (hết thời gian chờ)",
    pictureNoBroker: "Không lấy được ảnh: máy chủ chưa nối MQTT",
    pictureForbidden: "Vai trò này không xem ảnh trực tiếp",
    pictureOffline: "Camera mất liên lạc",
    chooseOperator: "Giao cho điều hành viên", noOperators: "Chưa có danh sách điều hành viên",
    writeNote: "Viết ghi chú", map: "Bản đồ", cameras: "Camera", accessPoints: "Điểm Wi-Fi",
    visitors: "Khách tại điểm du lịch", roads: "Đường (mức giao thông)", districts: "Huyện/thị",
    openIncidents: "Sự cố đang mở", clients: "người dùng", fps: "khung/giây", lastFrame: "Khung cuối",
    history: "Biểu đồ", compare: "So sánh", items: "Chọn (để trống: tất cả)", bucket: "Khoảng",
    days: "Số ngày", show: "Xem", png: "Ảnh PNG", noData: "Không có số liệu trong khoảng này.",
    time: "Thời gian", vehicles: "Số xe", congestedMinutes: "Số phút ùn tắc", wifiClients: "Người dùng Wi-Fi",
    wifiVisitors: "Lượt khách", arrivals: "Lượt đến", zoomHint: "Kéo để phóng to, nhấp đúp để trở lại",
    policeHistory: "Tin CAP đã nhận", system: "Hệ thống", openAlerts: "Cảnh báo mở",
    "compare.traffic-district": "Lưu lượng xe theo huyện/thị", "compare.traffic-road": "Lưu lượng xe theo tuyến đường",
    "compare.traffic-camera": "Lưu lượng xe theo camera", "compare.congestion-road": "Số phút ùn tắc theo tuyến đường",
    "compare.visitors-site": "Lượt khách Wi-Fi theo điểm du lịch", "compare.clients-site": "Người dùng Wi-Fi theo điểm du lịch",
    "compare.busiest-cameras": "Camera đông xe nhất", "compare.busiest-roads": "Tuyến đường đông xe nhất",
    "compare.busiest-sites": "Điểm du lịch đông khách nhất",
    "compare.forecast": "Dự báo (dải 80% và 95%)", forecastValue: "Giá trị", observed: "Thực tế", forecast: "Dự báo",
    low80: "Thấp 80%", high80: "Cao 80%", low95: "Thấp 95%", high95: "Cao 95%",
    mae: "Sai số TB (MAE)", mape: "MAPE", coverage80: "Độ phủ 80%:", coverage95: "Độ phủ 95%:",
    skillVsNaive: "Tốt hơn dự báo tuần trước:", model: "Mô hình", fallback: "dự phòng",
    fitProvince: "Xem toàn tỉnh", report: "Phản ánh", hotline: "Đường dây nóng 1022", hotlineTitle: "Phản ánh qua đường dây nóng", hotlineService: "Loại phản ánh",
    hotlinePick: "Nhấp vào bản đồ để chọn vị trí, hoặc nhập vĩ độ/kinh độ.", latitude: "Vĩ độ", longitude: "Kinh độ",
    description: "Mô tả", callerNumber: "Số người gọi (không bắt buộc)", send: "Gửi", hotlineDone: "Đã ghi nhận phản ánh số",
    "kind.citizen_report": "Phản ánh của người dân", "kind.traffic_anomaly": "Giao thông bất thường",
    "kind.visitor_anomaly": "Lượng khách bất thường", "kind.speeding": "Chạy quá tốc độ",
    clip: "Video hiện trường", exportClip: "Xuất video", clipVerified: "SHA-256 khớp", clipMismatch: "SHA-256 KHÔNG khớp",
    "fkind.line": "Vạch đếm", "fkind.road": "Đường", "fkind.district": "Huyện/thị", "fkind.site": "Điểm du lịch",
    "bucket.hour": "Giờ", "bucket.day": "Ngày", "bucket.minute": "Phút",
    "severity.critical": "Khẩn cấp", "severity.major": "Cao", "severity.minor": "Trung bình", "severity.info": "Thông tin",
    "state.open": "Mới", "state.acknowledged": "Đã xác nhận", "state.assigned": "Đã giao", "state.resolved": "Đã xử lý",
    "kind.intrusion": "Xâm nhập khu vực cấm", "kind.line_crossing": "Vượt vạch", "kind.congestion": "Ùn tắc",
    "kind.stopped_vehicle": "Xe dừng đỗ", "kind.wrong_way": "Đi ngược chiều", "kind.crowd": "Đám đông",
    "kind.camera_tamper": "Camera bị che/xoay", "kind.camera_offline": "Camera mất tín hiệu",
    "kind.ap_down": "Điểm Wi-Fi ngừng hoạt động", "kind.ap_overload": "Điểm Wi-Fi quá tải",
    "kind.delivery_failed": "Gửi tin công an thất bại",
    "zone.shoulder": "lề đường", "zone.away": "làn đi", "zone.toward": "làn về", "zone.floor": "sàn",
    "zone.lot": "bãi xe", "zone.gate": "cổng", "zone.restricted": "khu vực cấm", "zone.lane": "làn xe",
    "zone.security": "khu vực bảo vệ", "zone.other": "vùng khác",
    "action.open": "Mở", "action.acknowledge": "Xác nhận", "action.acknowledged": "Xác nhận",
    "action.assign": "Giao việc", "action.assigned": "Giao việc", "action.resolve": "Xử lý xong",
    "action.resolved": "Xử lý xong", "action.auto_resolve": "Tự đóng", "action.escalate": "Nâng mức",
    "action.mute": "Tạm tắt", "action.unmute": "Bật lại", "action.note": "Ghi chú", "action.update": "Cập nhật",
    "action.reopen": "Mở lại", "action.merge": "Gộp sự cố", "action.other": "Thao tác khác",
    "action.citizen_report": "Phản ánh của người dân",
    "actor.system": "Hệ thống", "actor.citizen": "Người dân", "actor.send-test": "Tin thử",
    "reason.new_incident": "sự cố mới", "reason.same_source": "cùng nguồn", "reason.same_site": "cùng điểm",
    "reason.nearby": "gần nhau", "reason.same_road": "cùng tuyến đường", "reason.maintenance": "đang bảo trì",
    "reason.inhibited": "camera mất tín hiệu/bị che", "reason.condition_cleared": "điều kiện đã hết",
    "reason.unacknowledged": "chưa được xác nhận", "reason.noted": "ghi chú", "reason.other": "lý do khác",
    reportJoined: "gộp phản ánh", reportDuplicate: "phản ánh trùng", reportOpened: "phản ánh",
    reportOverdue: "quá hạn xử lý phản ánh",
    "channel.app": "ứng dụng", "channel.hotline": "đường dây nóng", "channel.other": "kênh khác",
    "service.other": "dịch vụ khác",
    "zone.inner": "khu vực bên trong", "zone.northbound": "làn hướng bắc", "zone.southbound": "làn hướng nam",
    "zone.door": "cửa",
    "role.operator": "Điều hành viên", "role.police": "Công an", "role.planner": "Quy hoạch", "role.admin": "Quản trị",
    "cam.online": "Hoạt động", "cam.degraded": "Suy giảm", "cam.offline": "Ngoại tuyến", "cam.stale": "Mất liên lạc",
    "cam.tampered": "Bị che/xoay", "cam.unknown": "Chưa rõ",
    "ap.up": "Hoạt động", "ap.down": "Ngừng", "ap.unknown": "Chưa rõ",
    "level.free": "Thông thoáng", "level.busy": "Đông", "level.congested": "Ùn tắc", "level.unknown": "Chưa có số liệu",
    "cap.Alert": "Cảnh báo", "cap.Update": "Cập nhật", "cap.Cancel": "Hủy", "cap.Ack": "Xác nhận", "cap.Error": "Lỗi",
    "delivery.pending": "Đang chờ gửi", "delivery.delivered": "Đã nhận", "delivery.failed": "Thất bại",
    "delivery.retrying": "Đang gửi lại", "delivery.sent": "Đã gửi", "delivery.dead": "Bỏ cuộc", "delivery.other": "Khác",
  },
  en: {
    title: "Operations centre", signIn: "Sign in", username: "Username",
    password: "Password", logout: "Sign out", incidents: "Incidents", language: "Language",
    district: "District", all: "All", severity: "Severity", kind: "Kind", state: "State",
    source: "Source", opened: "Opened", updated: "Updated", noIncidents: "No open incidents.",
    acknowledge: "Acknowledge", assign: "Assign", note: "Note", resolve: "Resolve",
    save: "Save", cancel: "Cancel", close: "Close", details: "Details", failed: "Could not do that",
    live: "Live", offline: "Offline", reconnecting: "Reconnecting", noLive: "No live feed",
    wrongLogin: "Wrong username or password.", expired: "Session expired; sign in again.",
    sound: "Sound", soundOn: "Sound on for critical incidents", soundOff: "Mute",
    newCritical: "New critical incident",
    alerts: "Alerts", count: "Count", assignedTo: "Assigned to", acknowledgedBy: "Acknowledged by",
    notes: "Notes", audit: "Audit trail", capMessages: "CAP messages to police", noCap: "Not sent to the police.",
    evidence: "Evidence", noEvidence: "No evidence snapshot.", livePicture: "Live picture",
    nearby: "Nearby cameras", selectIncident: "Select an incident in the list or on the map.",
    cameraWall: "Camera wall", wallOf: "Cameras of", wallTop: "Cameras of the newest incidents",
    noPicture: "No picture", loading: "Loading picture…",
    pictureTimeout: "The camera did not answer in time (timeout)",
    pictureNoBroker: "No pictures: the server has no MQTT broker",
    pictureForbidden: "This role does not see live pictures",
    pictureOffline: "Camera out of contact",
    chooseOperator: "Assign to operator", noOperators: "No operator list available",
    writeNote: "Write a note", map: "Map", cameras: "Cameras", accessPoints: "Wi-Fi APs",
    visitors: "Visitors per site", roads: "Roads (traffic level)", districts: "Districts",
    openIncidents: "Open incidents", clients: "clients", fps: "fps", lastFrame: "Last frame",
    history: "Charts", compare: "Compare", items: "Choose (none: all)", bucket: "Bucket",
    days: "Days", show: "Show", png: "PNG picture", noData: "No data in this range.",
    time: "Time", vehicles: "Vehicles", congestedMinutes: "Congested minutes", wifiClients: "Wi-Fi clients",
    wifiVisitors: "Visitors", arrivals: "Arrivals", zoomHint: "Drag to zoom, double-click to reset",
    policeHistory: "CAP messages received", system: "System", openAlerts: "Open alerts",
    "compare.traffic-district": "Vehicles by district", "compare.traffic-road": "Vehicles by road",
    "compare.traffic-camera": "Vehicles by camera", "compare.congestion-road": "Congested minutes by road",
    "compare.visitors-site": "Wi-Fi visitors by site", "compare.clients-site": "Wi-Fi clients by site",
    "compare.busiest-cameras": "Busiest cameras", "compare.busiest-roads": "Busiest roads",
    "compare.busiest-sites": "Busiest sites",
    "compare.forecast": "Forecast (80% and 95% bands)", forecastValue: "Value", observed: "Observed", forecast: "Forecast",
    low80: "80% low", high80: "80% high", low95: "95% low", high95: "95% high",
    mae: "MAE", mape: "MAPE", coverage80: "80% coverage:", coverage95: "95% coverage:",
    skillVsNaive: "skill vs seasonal naive:", model: "model", fallback: "fallback",
    fitProvince: "Show the whole province", report: "Report", hotline: "1022 hotline", hotlineTitle: "Hotline report", hotlineService: "Service",
    hotlinePick: "Click the map to pick the place, or enter latitude/longitude.", latitude: "Latitude", longitude: "Longitude",
    description: "Description", callerNumber: "Caller's number (optional)", send: "Send", hotlineDone: "Report recorded, number",
    "kind.citizen_report": "Citizen report", "kind.traffic_anomaly": "Traffic anomaly",
    "kind.visitor_anomaly": "Visitor anomaly", "kind.speeding": "Speeding",
    clip: "Evidence clip", exportClip: "Export clip", clipVerified: "SHA-256 matches", clipMismatch: "SHA-256 does NOT match",
    "fkind.line": "Counting line", "fkind.road": "Road", "fkind.district": "District", "fkind.site": "Site",
    "bucket.hour": "Hour", "bucket.day": "Day", "bucket.minute": "Minute",
    "severity.critical": "Critical", "severity.major": "Major", "severity.minor": "Minor", "severity.info": "Info",
    "state.open": "Open", "state.acknowledged": "Acknowledged", "state.assigned": "Assigned", "state.resolved": "Resolved",
    "kind.intrusion": "Intrusion into a restricted zone", "kind.line_crossing": "Line crossing", "kind.congestion": "Congestion",
    "kind.stopped_vehicle": "Stopped vehicle", "kind.wrong_way": "Wrong-way driving", "kind.crowd": "Crowd",
    "kind.camera_tamper": "Camera tampered", "kind.camera_offline": "Camera offline",
    "kind.ap_down": "Wi-Fi AP down", "kind.ap_overload": "Wi-Fi AP overloaded",
    "kind.delivery_failed": "Police delivery failed",
    "zone.shoulder": "road shoulder", "zone.away": "outbound lane", "zone.toward": "inbound lane", "zone.floor": "floor area",
    "zone.lot": "car park", "zone.gate": "gate area", "zone.restricted": "restricted zone", "zone.lane": "lane",
    "zone.security": "protected zone", "zone.other": "other zone",
    "action.open": "Opened", "action.acknowledge": "Acknowledged", "action.acknowledged": "Acknowledged",
    "action.assign": "Assigned", "action.assigned": "Assigned", "action.resolve": "Resolved",
    "action.resolved": "Resolved", "action.auto_resolve": "Closed automatically", "action.escalate": "Escalated",
    "action.mute": "Muted", "action.unmute": "Unmuted", "action.note": "Note", "action.update": "Updated",
    "action.reopen": "Reopened", "action.merge": "Merged", "action.other": "Other action",
    "action.citizen_report": "Citizen report",
    "actor.system": "System", "actor.citizen": "Citizen", "actor.send-test": "Test message",
    "reason.new_incident": "new incident", "reason.same_source": "same source", "reason.same_site": "same site",
    "reason.nearby": "nearby", "reason.same_road": "same road", "reason.maintenance": "under maintenance",
    "reason.inhibited": "camera offline/tampered", "reason.condition_cleared": "condition cleared",
    "reason.unacknowledged": "not acknowledged", "reason.noted": "note", "reason.other": "other reason",
    reportJoined: "joined by report", reportDuplicate: "duplicate report", reportOpened: "report",
    reportOverdue: "report past its target time",
    "channel.app": "app", "channel.hotline": "hotline", "channel.other": "other channel",
    "service.other": "other service",
    "zone.inner": "inner area", "zone.northbound": "northbound lane", "zone.southbound": "southbound lane",
    "zone.door": "door",
    "role.operator": "Operator", "role.police": "Police", "role.planner": "Planner", "role.admin": "Administrator",
    "cam.online": "Online", "cam.degraded": "Degraded", "cam.offline": "Offline", "cam.stale": "No contact",
    "cam.tampered": "Tampered", "cam.unknown": "Unknown",
    "ap.up": "Up", "ap.down": "Down", "ap.unknown": "Unknown",
    "level.free": "Free-flowing", "level.busy": "Busy", "level.congested": "Congested", "level.unknown": "No data",
    "cap.Alert": "Alert", "cap.Update": "Update", "cap.Cancel": "Cancel", "cap.Ack": "Acknowledgement", "cap.Error": "Error",
    "delivery.pending": "Waiting", "delivery.delivered": "Delivered", "delivery.failed": "Failed",
    "delivery.retrying": "Retrying", "delivery.sent": "Sent", "delivery.dead": "Given up", "delivery.other": "Other",
  },
};

const i18n = { lang: localStorage.getItem("ioc.lang") === "en" ? "en" : "vi" };
window.iocMissing = new Set();

function t(key) {
  const value = LABELS[i18n.lang][key];
  if (value === undefined) { window.iocMissing.add(`${i18n.lang}:${key}`); return "?"; }
  return value;
}

// A server id in a namespace ("kind", "zone", ...): its label, or the namespace's "other".
function tid(ns, id) {
  const key = `${ns}.${id}`;
  if (LABELS[i18n.lang][key] !== undefined) return LABELS[i18n.lang][key];
  const other = LABELS[i18n.lang][`${ns}.other`];
  if (other !== undefined) return other;
  return t(key);
}

// Dates always with the year, in the province's time zone.
const FORMATS = {};
function formatTime(iso) {
  if (!iso) return "";
  FORMATS[i18n.lang] ??= new Intl.DateTimeFormat(i18n.lang === "vi" ? "vi-VN" : "en-GB", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hour12: false,
  });
  return FORMATS[i18n.lang].format(new Date(iso));
}

function formatClock(iso) {
  return new Intl.DateTimeFormat("vi-VN", {
    timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(iso ? new Date(iso) : new Date());
}

function applyStaticLabels(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  for (const node of root.querySelectorAll("[data-i18n-aria]")) node.setAttribute("aria-label", t(node.dataset.i18nAria));
}
